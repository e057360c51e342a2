"""The stage-6 user mix, the same for both colors: reads, writes, the background-job path (an
order create queues the confirmation job) and, where the app offers one, its WebSocket feed.

Run only through cutover_kit.load.runner (a subprocess: importing locust monkey-patches the
process with gevent). Everything comes from LOAD_* variables (cutover_kit.load.profile): the
loopback target, the step load shape, the request cap. A non-loopback target is refused when this
file is imported, before any request.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid

import gevent
import locust.stats
import websocket
from locust import HttpUser, LoadTestShape, between, events, task

from cutover_kit.load.profile import LoadProfile

PROFILE = LoadProfile.from_env(os.environ)
# The history CSV's percentiles cover this trailing window: one step, so each step's last row
# describes that step (the runner reads them; Locust's default is 10 s).
locust.stats.CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW = max(1, int(PROFILE.step_seconds))
LOG = logging.getLogger("load")

# Probed once at test start: the app's WebSocket feed ("orders-feed" = green's /ws/orders/{id},
# "action-cable" = Rails' /cable) and its line-items route, or None / False when it has none.
OFFERED: dict[str, object] = {"websocket": None, "line_items": False}
_requests_seen = 0
ENVIRONMENT: dict[str, object] = {}


class StepLoadShape(LoadTestShape):
    """PROFILE.steps one after the other, each for PROFILE.step_seconds; then, when the profile has
    one, the stress step past the knee and the light recovery load; then the run stops."""

    def tick(self):
        run_seconds = self.get_run_time()
        phase = PROFILE.phase_at(run_seconds)
        if phase is None:
            return None
        _set_percentile_window(run_seconds)
        return phase[1], phase[2]


def _set_percentile_window(run_seconds: float) -> None:
    """Half a second into the recovery phase, the history's percentiles switch to a 1 s window so
    each recovery second is judged on its own requests (how long recovery took); the stress step
    keeps a window of its own length, like the steps. Half a second late, so the previous phase's
    last row (written on the second) is still computed over its own window."""
    stress = PROFILE.stress
    if stress is None:
        return
    into_tail = run_seconds - PROFILE.steps_seconds - 0.5
    if into_tail < 0:
        window = PROFILE.step_seconds
    elif into_tail < stress.seconds:
        window = stress.seconds
    else:
        window = 1
    locust.stats.CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW = max(1, int(window))


@events.test_start.add_listener
def _probe_offered(environment, **_kwargs) -> None:
    if environment.host is not None and environment.host.rstrip("/") != PROFILE.target:
        LOG.error("--host %s differs from LOAD_TARGET_HOST %s: refusing to run", environment.host, PROFILE.target)
        environment.process_exit_code = 2
        gevent.spawn(environment.runner.quit)
        return
    OFFERED["line_items"] = _status(f"{PROFILE.target}/api/orders/1/line_items") == 200
    OFFERED["websocket"] = _probe_websocket() if PROFILE.websocket == "auto" else None
    LOG.info("user mix for %s: line items %s, websocket %s", PROFILE.target,
             "read" if OFFERED["line_items"] else "not offered", OFFERED["websocket"] or "not offered")


@events.request.add_listener
def _cap_requests(**_kwargs) -> None:
    """Stop the whole run at PROFILE.max_requests requests (the step shape bounds the time)."""
    global _requests_seen
    _requests_seen += 1
    if _requests_seen == PROFILE.max_requests:
        LOG.warning("request cap %d reached: stopping", PROFILE.max_requests)
        runner = ENVIRONMENT["current"].runner
        if runner is not None:
            gevent.spawn(runner.quit)


@events.init.add_listener
def _remember_environment(environment, **_kwargs) -> None:
    ENVIRONMENT["current"] = environment


class ShopUser(HttpUser):
    host = PROFILE.target
    wait_time = between(PROFILE.wait_seconds * 0.5, PROFILE.wait_seconds * 1.5)

    def on_start(self) -> None:
        # Green's flags stay at Rails until traffic moves: without this it would forward the load to
        # Rails and stage 6 would measure blue twice.
        if PROFILE.serve:
            self.client.headers["X-Cutover-Serve"] = PROFILE.serve

    def _get(self, path: str, name: str) -> None:
        # 404 is a valid answer for a seeded id the app does not have; 5xx and timeouts fail.
        with self.client.get(path, name=name, timeout=PROFILE.request_timeout_seconds, catch_response=True) as response:
            if response.status_code in (200, 404):
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")

    @task(4)
    def read_user(self) -> None:
        self._get(f"/api/users/{random.randint(1, PROFILE.user_ids)}", "/api/users/{id}")

    @task(4)
    def read_user_orders(self) -> None:
        self._get(f"/api/users/{random.randint(1, PROFILE.user_ids)}/orders", "/api/users/{id}/orders")

    @task(4)
    def read_order(self) -> None:
        self._get(f"/api/orders/{random.randint(1, PROFILE.order_ids)}", "/api/orders/{id}")

    @task(2)
    def read_line_items(self) -> None:
        if OFFERED["line_items"]:
            self._get(f"/api/orders/{random.randint(1, PROFILE.order_ids)}/line_items", "/api/orders/{id}/line_items")

    @task(2)
    def create_order(self) -> None:
        """The background-job path: the created order's confirmation job is queued by the app."""
        body = {"user_id": random.randint(1, PROFILE.user_ids), "amount_cents": random.randint(100, 99_999)}
        with self.client.post("/api/orders", json=body, name="/api/orders", timeout=PROFILE.request_timeout_seconds,
                              catch_response=True) as response:
            if response.status_code == 201:
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")

    @task(1)
    def create_user(self) -> None:
        body = {"email": f"load-{uuid.uuid4().hex}@example.test", "name": "load test"}
        with self.client.post("/api/users", json=body, name="/api/users", timeout=PROFILE.request_timeout_seconds,
                              catch_response=True) as response:
            if response.status_code == 201:
                response.success()
            else:
                response.failure(f"HTTP {response.status_code}")

    @task(1)
    def follow_order(self) -> None:
        """Connect to the app's WebSocket feed and wait for the order's first status message."""
        kind = OFFERED["websocket"]
        if kind is None:
            return
        started = time.perf_counter()
        order_id = random.randint(1, PROFILE.order_ids)
        error = None
        try:
            _first_status(kind, order_id, PROFILE.request_timeout_seconds)
        except Exception as failure:  # noqa: BLE001 - any failure of the exchange is a failed request
            error = failure
        events.request.fire(request_type="WS", name=f"websocket {kind}", response_time=(time.perf_counter() - started) * 1000,
                            response_length=0, exception=error, context={})


def _ws_url(path: str) -> str:
    return PROFILE.target.replace("http", "ws", 1) + path


def _first_status(kind: str, order_id: int, timeout: float) -> None:
    if kind == "orders-feed":
        conn = websocket.create_connection(_ws_url(f"/ws/orders/{order_id}"), timeout=timeout)
        try:
            message = json.loads(conn.recv())
            if message.get("type") not in ("status", "confirmed"):
                raise RuntimeError(f"unexpected first message {message}")
        finally:
            conn.close()
        return
    conn = websocket.create_connection(_ws_url("/cable"), timeout=timeout)
    try:
        identifier = json.dumps({"channel": "OrderStatusChannel", "order_id": order_id})
        conn.send(json.dumps({"command": "subscribe", "identifier": identifier}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # welcome, ping, confirm/reject, then the status message
            message = json.loads(conn.recv())
            if message.get("type") == "reject_subscription":
                return  # an unknown order id: a valid answer, like a 404
            if "message" in message:
                return
        raise TimeoutError("no status message within the timeout")
    finally:
        conn.close()


def _status(url: str) -> int | None:
    import requests  # gevent-patched with the rest of the process

    try:
        return requests.get(url, timeout=PROFILE.request_timeout_seconds).status_code
    except requests.RequestException:
        return None


def _probe_websocket() -> str | None:
    for kind in ("orders-feed", "action-cable"):
        try:
            _first_status(kind, 1, PROFILE.request_timeout_seconds)
            return kind
        except Exception:  # noqa: BLE001 - not offered (404, refused, closed): try the next kind
            continue
    return None
