"""Error tracking on the real sandbox: both apps' Sentry SDKs (sentry-ruby 5.3 in Rails, @sentry/node
10.78 in green) send to the real receiver the launcher runs; stage 4's check proves it; the error
fault's InjectedFaultError arrives under each color; and the SLO gate's trigger, on the real
receiver and Prometheus, reports green's new exception type per step (and FAILs when the plan says)."""

from __future__ import annotations

import asyncio
import time

import requests

from cutover_kit.hooks.error_tracking import ErrorTrackingHook
from cutover_kit.plan import load_plan
from cutover_kit.stages.monitoring import check_error_reporting
from cutover_kit.triggers.slo_gate import SLOGateTrigger
from sandbox.faults import FaultController

SERVE_OWN = {"X-Cutover-Serve": "typescript"}  # green serves the request itself instead of forwarding it to Rails


def wait_for_types(hook: ErrorTrackingHook, color: str, since: float, type_name: str, count: int) -> dict[str, int]:
    deadline = time.monotonic() + 20
    while True:
        types = hook.exception_types(color, since)
        if types.get(type_name, 0) >= count or time.monotonic() > deadline:
            return types
        time.sleep(0.3)


def gate_event(plan: dict, weights_set_at: float) -> dict:
    trigger = SLOGateTrigger(step_label="25 %", plan={**plan, "poll_interval_seconds": 0.2}, bake_seconds=60,
                             step_timeout_seconds=1.0, gate_started_at=time.time(), weights_set_at=weights_set_at,
                             error_tracking_conn_id="error_tracking_default", run_started_at=weights_set_at - 60)

    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first_event(), timeout=30))


def test_both_apps_report_to_the_receiver_and_green_s_new_type_is_judged_per_step(sandbox, use_connections):
    use_connections(sandbox)
    assert sandbox.status()["sentry"] is True

    # Stage 4's check: one test exception per color, each received under the release the app reports.
    result = check_error_reporting(timeout_seconds=30)
    assert result["verdict"] == "PASS", result
    assert result["releases"]["blue"].startswith("blue@") and result["releases"]["green"].startswith("green@")

    hook = ErrorTrackingHook()
    faults = FaultController(sandbox.config)
    since = time.time() - 1
    faults.inject("green", "errors", error_fraction=1.0)
    try:
        for _ in range(5):
            answer = requests.get(f"{sandbox.config.app_url('green')}/api/orders/1", headers=SERVE_OWN, timeout=5)
            assert answer.status_code == 500 and answer.headers["X-Fault-Injected"] == "1"
            assert answer.json() == {"error": "injected fault"}  # the answer is unchanged by the raise
    finally:
        faults.clear("green")
    assert wait_for_types(hook, "green", since, "InjectedFaultError", 5)["InjectedFaultError"] == 5

    # Green raised a type blue has not raised this run: reported by default, a FAIL when the plan says.
    plan = load_plan("rehearsal").to_dict()
    reported = gate_event(plan, weights_set_at=since)
    assert "new exception types on green that blue has not raised this run: InjectedFaultError x5; reported only" \
        in reported["line"], reported["line"]
    assert reported["measurements"]["error_tracking"]["new_types"] == {"InjectedFaultError": 5}
    failing = gate_event({**plan, "error_tracking": {"fail_on_new_exception_types": True}}, weights_set_at=since)
    assert failing["status"] == "failed" and failing["verdict"] == "FAIL", failing["line"]
    assert "InjectedFaultError x5; FAIL (plan: fail_on_new_exception_types)" in failing["line"]

    # Once blue raises it too (Rails' Cutover::InjectedFaultError), it is a known failure, not a new one.
    faults.inject("blue", "errors", error_fraction=1.0)
    try:
        for _ in range(2):
            answer = requests.get(f"{sandbox.config.app_url('blue')}/api/orders/1", timeout=5)
            assert answer.status_code == 500 and answer.headers["X-Fault-Injected"] == "1"
    finally:
        faults.clear("blue")
    assert wait_for_types(hook, "blue", since, "Cutover::InjectedFaultError", 2)["Cutover::InjectedFaultError"] == 2
    known = gate_event({**plan, "error_tracking": {"fail_on_new_exception_types": True}}, weights_set_at=since)
    # (the window may also hold stage 4's ErrorReportingCheck, which both colors raised)
    assert "no new exception type on green (green raised InjectedFaultError x5" in known["line"], known["line"]
    assert known["measurements"]["error_tracking"]["new_types"] == {}


def test_green_traces_its_requests_to_the_receiver_when_sampled(sandbox, monkeypatch):
    # OpenTelemetry through @sentry/node: green restarted with every request sampled; the receiver
    # keeps the transactions (route, duration, spans) apart from the errors.
    monkeypatch.setenv("SANDBOX_TRACES_SAMPLE_RATE", "1")
    sandbox.restart_app("green")
    since = time.time()
    try:
        for order_id in range(1, 11):
            answer = requests.get(f"{sandbox.config.app_url('green')}/api/orders/{order_id}", headers=SERVE_OWN, timeout=5)
            assert answer.status_code in (200, 404)
        sentry_url = f"http://{sandbox.config.host}:{sandbox.config.sentry_port}"
        deadline, traces, routes = time.monotonic() + 20, {}, {}
        while time.monotonic() < deadline:
            traces = requests.get(f"{sentry_url}/traces", params={"color": "green", "since": since - 1}, timeout=5).json()
            # Only the orders requests count: HAProxy's readiness probes and Prometheus' scrapes are
            # traced too, and counting them ended the wait one order transaction early.
            routes = {name: route for name, route in traces["transactions"].items() if "/api/orders/" in name}
            if sum(route["count"] for route in routes.values()) >= 10:
                break
            time.sleep(0.5)
        assert sum(route["count"] for route in routes.values()) == 10, traces
        assert all(route["p95_ms"] > 0 for route in routes.values())
        assert "request_handler.fastify" in traces["span_ops"], traces["span_ops"]
    finally:
        monkeypatch.delenv("SANDBOX_TRACES_SAMPLE_RATE")
        sandbox.restart_app("green")  # the rest of the module's sandbox untraced, as launched
