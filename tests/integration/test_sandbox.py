"""Integration tests of the rehearsal sandbox against real PostgreSQL, HAProxy, Prometheus, Redis.

One sandbox serves the whole module (see conftest.py); tests that move traffic put it back on
blue afterwards. The up/down test must stay LAST: it takes the shared sandbox down.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from cutover_kit.flags.flagd_file import FlagdFileStore
from cutover_kit.flags.model import FlagState, apply_flags
from sandbox.config import REPO_ROOT
from sandbox.faults import FaultController, FaultSchedule
from sandbox.launcher import Sandbox, SandboxError, haproxy_server_states
from sandbox.traffic import TrafficError, TrafficGenerator, TrafficProcess, dump_jsonl, load_jsonl, report

# A hung component must fail the module, not stall CI (pytest-timeout is in requirements.txt).
pytestmark = pytest.mark.timeout(120)


# ------------------------------------------------------------------------------- helpers


def runtime_api(sandbox: Sandbox, line: str) -> str:
    """Tiny HAProxy runtime API client: the router proper lives in plugins/cutover_kit/routing."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(sandbox.config.haproxy_socket))
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def set_green_percent(sandbox: Sandbox, percent: int) -> None:
    for server, weight in (("green", percent), ("blue", 100 - percent)):
        answer = runtime_api(sandbox, f"set server app/{server} weight {weight}")
        assert answer.strip() == "", f"HAProxy refused weight {weight} for {server}: {answer!r}"


def green_percent(sandbox: Sandbox) -> float:
    weights = {server: int(runtime_api(sandbox, f"get weight app/{server}").split()[0]) for server in ("blue", "green")}
    total = weights["blue"] + weights["green"]
    return 100.0 * weights["green"] / total if total else 0.0


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Metric samples of one /metrics page keyed by (name, sorted labels)."""
    text = requests.get(url, timeout=2).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum of the samples of that name whose labels include these (the others summed away)."""
    wanted = set(labels.items())
    return sum(value for (found, found_labels), value in samples.items() if found == name and wanted <= set(found_labels))


# Each app's own metric names and labels (Prometheus keeps them as they are; the plan's metric
# templates and the recording rules read them per color): blue (Rails) http_server_requests_total{code,method,path="/api/users/:id"}, green (Node)
# http_requests_total{status_code,method,route="/api/users/{id}"}.
APP_HTTP = {
    "blue": {"requests": "http_server_requests_total", "buckets": "http_server_request_duration_seconds_bucket",
             "route": "path", "code": "code", "users": "/api/users/:id", "order": "/api/orders/:id"},
    "green": {"requests": "http_requests_total", "buckets": "http_request_duration_seconds_bucket",
              "route": "route", "code": "status_code", "users": "/api/users/{id}", "order": "/api/orders/{id}"},
}


def app_requests(samples: dict, color: str, route: str, code: str, method: str = "GET") -> float:
    names = APP_HTTP[color]
    return total(samples, names["requests"], method=method, **{names["route"]: names[route], names["code"]: code})


def app_bucket(samples: dict, color: str, route: str, le: str) -> float:
    names = APP_HTTP[color]
    return total(samples, names["buckets"], le=le, **{names["route"]: names[route]})


def prometheus_query(sandbox: Sandbox, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": expr} if at is None else {"query": expr, "time": at}
    answer = requests.get(f"{sandbox.config.prometheus_url}/api/v1/query", params=params, timeout=3).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


OWN_CODE = {"X-Cutover-Serve": "typescript"}  # a direct request to green served by its own code


def set_flags(sandbox: Sandbox, state: FlagState) -> None:
    """Write the flag file and wait until green evaluates it (its provider polls every 50 ms)."""
    apply_flags(FlagdFileStore(sandbox.config.flags_file), state)
    wait_for(lambda: requests.get(f"{sandbox.config.app_url('green')}/__flags", timeout=2).json()["features"] == state.features,
             timeout=3, what=f"green to evaluate {state.describe()}")


@pytest.fixture
def all_blue_after(sandbox: Sandbox) -> Iterator[None]:
    """Whatever a test does to weights, flags and faults, the next one starts on blue, fault-free."""
    yield
    set_green_percent(sandbox, 0)
    for color in ("blue", "green"):
        if sandbox.app_pid(color) is None:
            sandbox.restart_app(color)
        FaultController(sandbox.config).clear(color)
    set_flags(sandbox, FlagState.rails())


# ------------------------------------------------------------------------------- tests


def test_database_is_seeded_with_the_legacy_schema(sandbox: Sandbox) -> None:
    with psycopg2.connect(sandbox.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        assert cur.fetchone()[0] == 1000
        cur.execute("SELECT count(*), count(DISTINCT status) FROM orders")
        assert cur.fetchone() == (5000, 5)
        cur.execute("SELECT count(*) BETWEEN 10000 AND 20000 FROM line_items")
        assert cur.fetchone() == (True,)
        # SANDBOX_SCHEMA defaults to "expanded": the Rails base plus the stage-2 expand, backfilled.
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert cur.fetchall() == [("20240101000000",), ("20261126000001",)]
        cur.execute("SELECT count(*) FROM orders WHERE amount IS NULL OR status_v2 IS NULL")
        assert cur.fetchone() == (0,)
        # The cutover role owns its tables: green can run migrations without a superuser.
        cur.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'")
        assert cur.fetchone()[0] == "cutover"
    conn.close()
    state = json.loads(sandbox.config.state_file.read_text())
    assert len(state["postgres"]["password"]) >= 24
    assert sandbox.config.state_file.stat().st_mode & 0o077 == 0, "state.json holds a password: must be 0600"


def test_router_serves_reads_and_writes_from_both_colors(sandbox: Sandbox, all_blue_after: None) -> None:
    router = sandbox.config.router_url
    with requests.Session() as http:
        user = http.get(f"{router}/api/users/1", timeout=2)
        assert user.status_code == 200 and user.json()["email"] == "chloe.costa1@shop.test"  # sandbox.datagen, seed 42
        assert user.headers["X-App-Color"] == user.headers["X-Backend-Server"] == "blue"
        assert user.headers["X-Served-By"] == "rails"

        created = http.post(f"{router}/api/orders", json={"user_id": 1, "amount_cents": 1234}, timeout=2)
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        order = http.get(f"{router}/api/orders/{order_id}", timeout=2).json()
        assert (order["user_id"], order["amount_cents"], order["status"]) == (1, 1234, "pending")
        listed = http.get(f"{router}/api/users/1/orders", timeout=2).json()["orders"]
        assert listed[0]["id"] == order_id and len(listed) <= 20

        email = f"new-{time.time_ns()}@example.test"
        assert http.post(f"{router}/api/users", json={"email": email, "name": "N"}, timeout=2).status_code == 201
        assert http.post(f"{router}/api/users", json={"email": email}, timeout=2).status_code == 409
        assert http.post(f"{router}/api/orders", json={"user_id": 10**9, "amount_cents": 1}, timeout=2).status_code == 422
        bad = http.post(f"{router}/api/orders", json={"user_id": "1", "amount_cents": 1}, timeout=2)
        assert bad.status_code == 400 and "user_id" in bad.json()["error"]
        assert http.get(f"{router}/api/orders/99999999", timeout=2).status_code == 404

        set_green_percent(sandbox, 50)
        served = [http.get(f"{router}/api/users/2", timeout=2) for _ in range(40)]
    assert {r.headers["X-App-Color"] for r in served} == {"blue", "green"}
    assert all(r.headers["X-App-Color"] == r.headers["X-Backend-Server"] for r in served)
    green_share = sum(r.headers["X-App-Color"] == "green" for r in served) / len(served)
    assert 0.4 <= green_share <= 0.6, f"50/50 weights gave {green_share:.0%} green"


def test_metrics_carry_color_labels_in_apps_and_prometheus(sandbox: Sandbox) -> None:
    for color in ("blue", "green"):
        # Green's own code answers only when told to (flags are at Rails): forwarded requests are
        # not green's SLI (test_flags checks their own counter).
        requests.get(f"{sandbox.config.app_url(color)}/api/users/3", headers=OWN_CODE, timeout=2)
        samples = scrape(f"{sandbox.config.app_url(color)}/metrics")
        # The apps label no sample with a color (Prometheus' targets do) except their app_info.
        info = [dict(labels) for name, labels in samples if name == "app_info"]
        assert len(info) == 1 and info[0]["color"] == color, info
        assert app_requests(samples, color, "users", "200") >= 1
        assert app_bucket(samples, color, "users", "+Inf") >= 1
        assert not any("color" in dict(labels) for name, labels in samples if name != "app_info")

    # Prometheus stores each app's own names, unrenamed, with the color of its scrape target.
    def colors_in_prometheus() -> set[str]:
        return {r["metric"]["color"] for r in prometheus_query(
            sandbox, 'sum by (color) (http_server_requests_total{job="apps"}) or sum by (color) (http_requests_total{job="apps"})')}

    wait_for(lambda: colors_in_prometheus() == {"blue", "green"}, timeout=5, what="Prometheus to scrape both colors")
    for color in ("blue", "green"):
        names = APP_HTTP[color]
        query = f'sum({names["requests"]}{{color="{color}",{names["route"]}="{names["users"]}",{names["code"]}="200"}})'
        wait_for(lambda: [r for r in prometheus_query(sandbox, query) if float(r["value"][1]) >= 1], timeout=5,
                 what=f"{color}'s request counted under its own name")
        buckets = prometheus_query(sandbox, f'{names["buckets"]}{{color="{color}",{names["route"]}="{names["users"]}",le="+Inf"}}')
        assert buckets, color
    # Nothing renamed at ingestion: blue has no Node-named series, green no Rails-named ones.
    assert prometheus_query(sandbox, 'http_requests_total{job="apps",color="blue"}') == []
    assert prometheus_query(sandbox, 'http_server_requests_total{job="apps",color="green"}') == []
    # Recording rules are loaded and evaluated (blue has traffic; ratio falls back to 0, not empty).
    # The ratio is NaN (0/0) until two scrapes 1 s apart saw blue's counter move: keep a trickle of
    # requests going until it is a number (a single request could fall between scrapes; seen in CI).
    def blue_ratio() -> list:
        requests.get(f"{sandbox.config.app_url('blue')}/api/users/3", timeout=2)
        answer = prometheus_query(sandbox, 'color:http_errors:ratio10s{color="blue"}')
        return [r for r in answer if r["value"][1] != "NaN"]

    ratio = wait_for(blue_ratio, timeout=10, what="blue error ratio")
    assert float(ratio[0]["value"][1]) == 0.0
    haproxy = prometheus_query(sandbox, 'haproxy_server_http_responses_total{proxy="app", code="2xx"}')
    assert {r["metric"]["server"] for r in haproxy} == {"blue", "green"}


# Each app's own names for its background jobs (processed, failed), their queue latency and its
# open WebSockets: what the sandbox_apps templates and the SLO rules read.
OWN_JOB_AND_SOCKET_METRICS = {
    "blue": ("sidekiq_jobs_processed_total", "sidekiq_jobs_failed_total", "sidekiq_queue_latency_seconds",
             "sidekiq_job_queue_latency_seconds_bucket", "actioncable_connections"),
    "green": ("bullmq_jobs_completed_total", "bullmq_jobs_failed_total", "bullmq_job_wait_duration_seconds_bucket",
              "ws_connections_active"),
}


def test_each_app_serves_its_openapi_document_and_its_own_job_and_websocket_metrics(sandbox: Sandbox) -> None:
    for color, names in OWN_JOB_AND_SOCKET_METRICS.items():
        url = sandbox.config.app_url(color)
        document = requests.get(f"{url}/openapi.json", timeout=5)
        assert document.status_code == 200 and document.headers["Content-Type"].startswith("application/json"), color
        spec = document.json()
        assert spec["openapi"].startswith("3."), (color, spec.get("openapi"))
        paths = {path.replace("{user_id}", "{id}").replace("{order_id}", "{id}") for path in spec["paths"]}
        assert {"/api/users/{id}", "/api/orders", "/api/orders/{id}", "/api/users/{id}/orders"} <= paths, (color, sorted(paths))
        # One order written to each app's own code queues one confirmation job on its own queue
        # (Sidekiq, BullMQ): the per-job histograms exist once a job has run.
        created = requests.post(f"{url}/api/orders", json={"user_id": 5, "amount_cents": 1234}, headers=OWN_CODE, timeout=5)
        assert created.status_code == 201, (color, created.status_code, created.text)

        def missing() -> list[str]:
            exported = {name for name, _ in scrape(f"{url}/metrics")}
            return sorted(set(names) - exported)

        wait_for(lambda: not missing(), timeout=15, what=f"{color}'s own job, queue-latency and WebSocket metrics on /metrics")


def test_fault_control_is_denied_through_the_router_but_works_directly(sandbox: Sandbox) -> None:
    router = sandbox.config.router_url
    denied = [requests.get(router + path, timeout=2) for path in ("/__fault", "//__fault", "/%5F_fault", "/__FAULT", "/__flags")]
    denied.append(requests.post(f"{router}/__fault", json={"crash": True}, timeout=2))
    assert [answer.status_code for answer in denied] == [403] * 6
    # Denied by HAProxy itself, not by the app's own X-Forwarded-For check behind it.
    assert not any("X-Served-By" in answer.headers for answer in denied)

    direct = f"{sandbox.config.app_url('blue')}/__fault"
    assert requests.get(direct, timeout=2).json() == {"error_fraction": 0.0, "added_latency_ms": 0.0, "body_drift": False,
                                                      "max_concurrent": 0, "weakness": "none"}
    assert requests.post(direct, json={"error_fraction": 0.1}, headers={"X-Forwarded-For": "10.0.0.1"},
                         timeout=2).status_code == 403
    for body, message in (({"error_fraction": 1.5}, "between 0 and 1"), ({"added_latency_ms": -1}, "added_latency_ms"),
                          ({"crash": "yes"}, "crash must be"), ({"colour": "red"}, "unknown fault field"),
                          ({"body_drift": "on"}, "body_drift must be"),
                          ([], "JSON object"), ({}, "sets nothing")):
        answer = requests.post(direct, json=body, timeout=2)
        assert answer.status_code == 400 and message in answer.json()["error"], (body, answer.text)
    assert requests.get(direct, timeout=2).json()["error_fraction"] == 0.0  # rejected bodies changed nothing


def test_error_fault_fails_about_that_fraction_with_the_header(sandbox: Sandbox, all_blue_after: None) -> None:
    app = sandbox.config.app_url("blue")
    before = scrape(f"{app}/metrics")
    FaultController(sandbox.config).inject("blue", "errors", error_fraction=0.3)
    with requests.Session() as http:
        answers = [http.get(f"{app}/api/users/4", timeout=2) for _ in range(300)]
    failed = [a for a in answers if a.status_code == 500]
    assert all(a.headers.get("X-Fault-Injected") == "1" and a.headers["X-App-Color"] == "blue" for a in failed)
    assert all(a.status_code == 200 and "X-Fault-Injected" not in a.headers for a in answers if a not in failed)
    assert 0.2 <= len(failed) / len(answers) <= 0.4, f"{len(failed)}/300 failed for error_fraction 0.3"
    after = scrape(f"{app}/metrics")
    assert app_requests(after, "blue", "users", "500") - app_requests(before, "blue", "users", "500") == len(failed)

    FaultController(sandbox.config).clear("blue")
    with requests.Session() as http:
        assert all(http.get(f"{app}/api/users/4", timeout=2).status_code == 200 for _ in range(30))


def test_latency_fault_shows_in_the_histogram(sandbox: Sandbox, all_blue_after: None) -> None:
    app = sandbox.config.app_url("green")
    before = scrape(f"{app}/metrics")
    FaultController(sandbox.config).inject("green", "latency", added_latency_ms=150)
    with requests.Session() as http:
        durations = []
        for _ in range(8):
            started = time.monotonic()
            assert http.get(f"{app}/api/orders/1", headers=OWN_CODE, timeout=2).status_code == 200
            durations.append(time.monotonic() - started)
    assert min(durations) >= 0.15
    after = scrape(f"{app}/metrics")

    def delta(le: str) -> float:
        return app_bucket(after, "green", "order", le) - app_bucket(before, "green", "order", le)

    assert delta("0.1") == 0 and delta("0.15") == 0, "delayed requests must not land in fast buckets"
    assert delta("0.3") == 8 and delta("+Inf") == 8


def test_crash_kills_the_app_haproxy_marks_it_down_and_restart_brings_it_back(sandbox: Sandbox, all_blue_after: None) -> None:
    old_pid = sandbox.app_pid("green")
    assert old_pid is not None
    answer = requests.post(f"{sandbox.config.app_url('green')}/__fault", json={"crash": True}, timeout=2)
    assert answer.status_code == 202 and answer.json()["exit_code"] == 70

    wait_for(lambda: sandbox.app_pid("green") is None, timeout=3, what="green process to exit")
    wait_for(lambda: haproxy_server_states(sandbox.config.haproxy_socket)["green"].startswith("DOWN"),
             timeout=3, what="HAProxy to mark green DOWN")
    with pytest.raises(SandboxError, match="green"):
        sandbox.up()  # partly running: refuses instead of silently wiping the database

    new_pid = sandbox.restart_app("green")
    assert new_pid != old_pid and sandbox.app_pid("green") == new_pid
    assert haproxy_server_states(sandbox.config.haproxy_socket)["green"] == "UP"
    assert requests.get(f"{sandbox.config.app_url('green')}/readyz", timeout=2).status_code == 200


def test_traffic_ledger_report_and_lost_write_detection(sandbox: Sandbox, all_blue_after: None, tmp_path: Path) -> None:
    set_green_percent(sandbox, 50)
    generator = TrafficGenerator(sandbox.config.router_url, rps=60, max_seconds=3, max_requests=150, seed=3)
    started = time.monotonic()
    ledger = generator.run()
    assert time.monotonic() - started < 6, "bounded in time"
    assert len(ledger) + generator.skipped == 150, "bounded by count: 60 rps x 3 s would be 180"
    assert generator.skipped == 0, "the sandbox should keep up with 60 rps"

    result = report(ledger, sandbox.dsn(), [])
    assert result["total"] == len(ledger) and result["failed"] == 0 and result["writes_lost"] == 0
    assert result["writes_acknowledged"] > 10
    assert set(result["by_color"]) == {"blue", "green"}
    assert {entry["route"] for entry in ledger} >= {"/api/orders", "/api/users/{id}", "/api/users/{id}/orders"}
    assert load_jsonl(dump_jsonl(ledger, tmp_path / "ledger.jsonl")) == ledger

    victim = next(entry["write_id"] for entry in ledger if entry["write_id"])
    with psycopg2.connect(sandbox.dsn()) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE id = %s", (victim,))
    conn.close()
    lost = report(ledger, sandbox.dsn(), [])
    assert lost["writes_lost"] == 1 and lost["lost_write_ids"] == [victim]


def test_traffic_process_keeps_its_pace_while_the_parent_is_frozen(sandbox: Sandbox, tmp_path: Path) -> None:
    """The rehearsal's generator runs in a child process: a parent that holds its GIL for 2.5 s (as
    Airflow's in-process stalls did for 3-19 s) must not pause the traffic."""
    acknowledged = tmp_path / "acknowledged.txt"
    traffic = TrafficProcess(sandbox.config.router_url, rps=40, max_seconds=30, seed=9,
                             ledger_path=tmp_path / "ledger.jsonl", acknowledged_writes=acknowledged)
    with traffic:
        assert traffic.running and acknowledged.exists()
        time.sleep(1.0)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(30)  # no other thread of this process runs until the loop ends
        try:
            frozen_from = time.time()
            while time.time() < frozen_from + 2.5:
                pass
            frozen_to = time.time()
        finally:
            sys.setswitchinterval(switch)
        wait_for(lambda: acknowledged.read_text().strip(), timeout=5, what="acknowledged writes in the file")
    assert traffic.process is not None and traffic.process.returncode is not None, "reaped"
    ledger = traffic.ledger
    assert ledger == load_jsonl(tmp_path / "ledger.jsonl")
    during = [entry for entry in ledger if frozen_from + 0.2 <= entry["t"] <= frozen_to - 0.2]
    assert len(during) >= 0.7 * 40 * 2.1, f"{len(during)} requests while the parent was frozen"
    assert not [e for e in ledger if e["status"] is None or e["status"] >= 500]
    written = {int(line) for line in acknowledged.read_text().split()}
    assert written == {e["write_id"] for e in ledger if e["write_id"] is not None} and written
    assert not Path(f"/proc/{traffic.process.pid}").exists(), "reaped, not a zombie"


def test_traffic_process_stops_when_its_parent_dies(sandbox: Sandbox, tmp_path: Path) -> None:
    """A rehearsal killed outright (SIGKILL: no finally) leaves no generator behind: the child
    sees its stdin close, finishes its requests and writes its ledger."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from sandbox.traffic import TrafficProcess; "
         f"t = TrafficProcess({sandbox.config.router_url!r}, rps=20, max_seconds=60, ledger_path={str(tmp_path / 'l.jsonl')!r}).start(); "
         "print(t.process.pid, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")])})
    try:
        child = int(parent.stdout.readline())
        time.sleep(1.0)
        parent.kill()
        parent.wait(5)
        wait_for(lambda: not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
                 timeout=10, what="the orphaned traffic process to exit")
    finally:
        parent.kill()
        parent.wait()
    assert len(load_jsonl(tmp_path / "l.jsonl")) >= 10


def test_traffic_process_that_cannot_start_says_why_and_is_reaped(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    traffic = TrafficProcess(url, rps=10, max_seconds=5, ledger_path=tmp_path / "ledger.jsonl")
    with pytest.raises(TrafficError, match="no user found"):
        traffic.start()
    assert traffic.process is not None and traffic.process.returncode is not None
    assert traffic.stop() == []


def test_traffic_process_starts_in_a_process_holding_over_1024_descriptors(tmp_path: Path) -> None:
    # A pytest session running a dozen rehearsals in-process holds > 1024 descriptors (Airflow's
    # dag.test() leaves an event loop per task); select() refused them ("filedescriptor out of range").
    import os

    held = []
    try:
        with open(os.devnull) as devnull:
            while not held or held[-1] < 1100:
                held.append(os.dup(devnull.fileno()))
        with socket.socket() as sock:  # a port nothing listens on: the child says why and exits
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        traffic = TrafficProcess(url, rps=10, max_seconds=5, ledger_path=tmp_path / "ledger.jsonl")
        with pytest.raises(TrafficError, match="no user found"):
            traffic.start()
        assert traffic.stop() == []
    finally:
        for fd in held:
            os.close(fd)


def test_fault_schedule_under_traffic_separates_injected_from_real_failures(sandbox: Sandbox, all_blue_after: None) -> None:
    set_flags(sandbox, FlagState.for_step(50))  # green's own code serves what the router sends it
    set_green_percent(sandbox, 50)
    faults = [
        {"color": "green", "fault": "errors", "error_fraction": 0.3, "after_seconds": 0.5},
        {"color": "blue", "fault": "latency", "added_latency_ms": 40, "at_green_percent": 75},
        {"color": "green", "fault": "crash", "after_seconds": 3.0},
    ]
    generator = TrafficGenerator(sandbox.config.router_url, rps=60, max_seconds=4.5, seed=5).start()
    schedule = FaultSchedule(FaultController(sandbox.config), faults, lambda: green_percent(sandbox),
                             started_at=generator.started_at).start()
    time.sleep(1.5)
    shifted_at = time.time()
    set_green_percent(sandbox, 75)
    ledger = generator.join(timeout=15)
    windows = schedule.stop()

    assert [w["kind"] for w in sorted(windows, key=lambda w: w["start"])] == ["errors", "latency", "crash"]
    assert all(w["error"] is None for w in windows)
    latency = next(w for w in windows if w["kind"] == "latency")
    assert shifted_at <= latency["start"] <= shifted_at + 0.5, "at_green_percent fires within a poll or two"
    crash = next(w for w in windows if w["kind"] == "crash")
    assert crash["end"] is None and sandbox.app_pid("green") is None

    result = report(ledger, sandbox.dsn(), windows)
    assert result["failed_injected"] > 0
    assert result["failed_not_injected"] == 0, [e for e in ledger if e["status"] is None or e["status"] >= 500]
    assert result["writes_lost"] == 0
    assert not any(e["injected"] and e["color"] != "green" for e in ledger)

    # The live recording rule saw green's injected errors before the crash (1 s scrapes).
    before_crash = crash["start"] - 0.1
    ratio = prometheus_query(sandbox, 'color:http_errors:ratio10s{color="green"}', at=before_crash)
    assert ratio and float(ratio[0]["value"][1]) > 0.01, ratio


def test_promtool_checks_and_tests_the_rules() -> None:
    prometheus = REPO_ROOT / "include" / "prometheus"
    # Every test file: cutover_test.yml (the gate-window rules), slo_test.yml (burn-rate timing).
    test_files = sorted((prometheus / "tests").glob("*_test.yml"))
    assert {path.name for path in test_files} >= {"cutover_test.yml", "slo_test.yml"}
    for argv in (["promtool", "check", "rules", *map(str, sorted((prometheus / "rules").glob("*.yml")))],
                 ["promtool", "test", "rules", *map(str, test_files)]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}{done.stderr}"


def test_cli_status_and_env_describe_the_running_sandbox(sandbox: Sandbox, sandbox_env: dict[str, str]) -> None:
    def cli(command: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sandbox.launcher", command], capture_output=True, text=True,
                              env=sandbox_env, cwd=REPO_ROOT, timeout=30)

    status = cli("status")
    assert status.returncode == 0 and all(json.loads(status.stdout).values()), status.stdout + status.stderr
    # The file flag backend (the default) runs no unleash-server.
    assert set(json.loads(status.stdout)) == {"postgres", "redis", "webhooks", "alertmanager", "sentry", "blue_worker", "blue", "green",
                                              "haproxy", "prometheus"}
    lines = cli("env").stdout.splitlines()
    exported = {}
    for line in lines:
        name, _, value = line.removeprefix("export ").partition("=")
        exported[name] = json.loads(value.strip("'"))
    assert exported["AIRFLOW_CONN_POSTGRES_DEFAULT"] == sandbox.connections()["postgres_default"]
    assert exported["AIRFLOW_CONN_HAPROXY_DEFAULT"]["extra"]["socket_path"] == str(sandbox.config.haproxy_socket)
    assert set(exported) == {f"AIRFLOW_CONN_{name.upper()}" for name in
                             ("prometheus_default", "haproxy_default", "postgres_default", "redis_default",
                              "app_blue", "app_green", "app_router", "flagd_default",
                              "app_blue_loadtest", "app_green_loadtest",
                              "smoke_webhook", "cutover_notifications", "alertmanager_default",
                              "error_tracking_default", "app_logs_blue", "app_logs_green")}
    assert exported["AIRFLOW_CONN_FLAGD_DEFAULT"]["extra"]["path"] == str(sandbox.config.flags_file)


# Must stay last: it takes the module's sandbox down (the fixture's own down() is then a no-op).
def test_up_and_down_are_idempotent_and_leave_no_process(sandbox: Sandbox, no_leftovers: Callable) -> None:
    state = json.loads(sandbox.config.state_file.read_text())
    pids = {name: info["pid"] for name, info in state["components"].items()}
    started = time.monotonic()
    again = sandbox.up()
    assert time.monotonic() - started < 3, "up() on a running sandbox only verifies"
    assert {name: info["pid"] for name, info in again["components"].items()} == pids
    assert all(sandbox.status().values())

    stopped = sandbox.down()
    assert set(stopped) == {"postgres", "redis", "webhooks", "alertmanager", "sentry", "blue_worker", "blue", "green", "haproxy",
                            "prometheus"}
    no_leftovers(sandbox.config)
    assert not any(sandbox.status().values())
    assert sandbox.down() == []
    with pytest.raises(SandboxError, match="not up"):
        sandbox.connections()
