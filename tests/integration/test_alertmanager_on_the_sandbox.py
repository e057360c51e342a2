"""The sandbox Alertmanager for real: Prometheus sends to it, stage 4's three checks pass on a
sandbox under traffic (the test alert read back from the webhook receiver, then resolved), a
misrouted alert fails the routing check naming both receivers, and the SLO gate halts naming a
critical alert for green posted to Alertmanager's API (an unreadable Alertmanager never passes)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests

from cutover_kit.hooks.haproxy import HAProxyHook
from cutover_kit.plan import load_plan
from cutover_kit.triggers.slo_gate import SLOGateTrigger
from sandbox.traffic import TrafficGenerator

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def connections(sandbox, use_connections):
    use_connections(sandbox)


@pytest.fixture(scope="module")
def under_traffic(sandbox):
    """Traffic through the router at 50 % green (dashboard panels need both colors' series)."""
    saved = dict(os.environ)  # module scope: the Connections for the fixture itself, restored after
    for conn_id, connection in sandbox.connections().items():
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
    generator = TrafficGenerator(sandbox.config.router_url, rps=40, max_seconds=240, seed=23)
    generator.start()
    try:
        HAProxyHook().set_green_percent(50)
        time.sleep(6)  # a few 1 s scrapes into the 1 m rates
        yield sandbox
    finally:
        generator.stop()
        HAProxyHook().set_green_percent(0)
        os.environ.clear()
        os.environ.update(saved)


def am_alerts(sandbox, matcher: str) -> list[dict]:
    return requests.get(f"{sandbox.config.alertmanager_url}/api/v2/alerts", params={"filter": matcher}, timeout=5).json()


def in_stage_4(callable_):
    from airflow.sdk.execution_time.context import set_current_context

    with set_current_context({"run_id": "manual__2026-12-08T02:30:00+00:00"}):
        return callable_()


def test_prometheus_sends_to_the_sandbox_alertmanager(sandbox):
    answer = requests.get(f"{sandbox.config.prometheus_url}/api/v1/alertmanagers", timeout=5).json()
    urls = [am["url"] for am in answer["data"]["activeAlertmanagers"]]
    assert urls == [f"{sandbox.config.alertmanager_url}/api/v2/alerts"]


def test_stage_4_checks_pass_on_a_sandbox_under_traffic(under_traffic, caplog):
    from cutover_kit.stages import monitoring

    caplog.set_level("INFO", logger="cutover_kit.stages.monitoring")
    started = time.monotonic()
    rules = monitoring.check_rules_loaded()
    rules_seconds = time.monotonic() - started
    assert rules["verdict"] == "PASS" and rules["groups"] == ["cutover", "cutover_slo"]
    started = time.monotonic()
    routing = in_stage_4(monitoring.check_alert_routing)
    routing_seconds = time.monotonic() - started
    assert routing["routed_to"] == ["green-page"] and routing["delivered_to"][0] == "green-page", routing
    assert routing_seconds < 15, routing_seconds
    started = time.monotonic()
    dashboard = monitoring.check_dashboard_queries()
    dashboard_seconds = time.monotonic() - started
    assert dashboard["verdict"] == "PASS" and dashboard["not_met"], dashboard
    text = caplog.text
    assert "rule group 'cutover_slo' loaded and healthy" in text
    assert f"test alert {routing['test_id']} delivered to receiver 'green-page'" in text
    assert f"Test alert {routing['test_id']} resolved" in text
    assert "no data, as marked: requires pg_stat_statements" in text
    # Resolved: Alertmanager no longer lists it, so no gate could ever see it.
    assert am_alerts(under_traffic, f'cutover_routing_test="{routing["test_id"]}"') == []
    assert "delivered there in" in routing["reason"]
    print(f"stage 4 checks on the sandbox (work only, no Airflow task overhead): rules {rules_seconds:.2f} s, "
          f"routing {routing_seconds:.2f} s (delivery {routing['delivery_seconds']} s), dashboard {dashboard_seconds:.2f} s")


def test_a_misrouted_test_alert_fails_the_check_naming_both_receivers(sandbox, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from cutover_kit.stages import monitoring

    connection = sandbox.connections()["alertmanager_default"]
    connection["extra"]["routing_test_receiver"] = "ticket"
    monkeypatch.setenv("AIRFLOW_CONN_ALERTMANAGER_DEFAULT", json.dumps(connection))
    with pytest.raises(AirflowFailException, match=r"routed test alert \S+ to \['green-page'\], expected 'ticket'"):
        in_stage_4(monitoring.check_alert_routing)


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture
def green_page(sandbox):
    """A critical alert for green posted to Alertmanager's API, as Prometheus would; resolved after."""
    labels = {"alertname": f"GreenCheckoutFailing{uuid.uuid4().hex[:6]}", "color": "green", "severity": "page"}
    alert = {"labels": labels, "annotations": {"summary": "green checkout fails for 30 % of carts"},
             "startsAt": rfc3339(time.time()), "endsAt": rfc3339(time.time() + 120)}
    url = f"{sandbox.config.alertmanager_url}/api/v2/alerts"
    requests.post(url, json=[alert], timeout=5).raise_for_status()
    yield labels["alertname"]
    requests.post(url, json=[{**alert, "endsAt": rfc3339(time.time())}], timeout=5).raise_for_status()


def run_gate(percent: int, **overrides) -> dict:
    plan = load_plan("rehearsal", {"bake_seconds": 8, "window_seconds": 4, "min_requests": 5, **overrides}).to_dict()
    HAProxyHook().set_green_percent(percent)
    trigger = SLOGateTrigger(
        step_label=f"{percent} %", plan=plan, bake_seconds=plan["bake_seconds"], step_timeout_seconds=plan["step_timeout_seconds"],
        gate_started_at=time.time(), weights_set_at=time.time(), haproxy_conn_id="haproxy_default",
        alertmanager_conn_id="alertmanager_default",
    )

    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first_event(), timeout=90))


def test_the_gate_halts_naming_a_critical_alert_for_green_and_puts_traffic_back(under_traffic, green_page):
    started = time.time()
    event = run_gate(50)
    assert event["status"] == "failed" and event["polls"] == 1, event["line"]
    assert event["line"].startswith(f"Halt at 50 %: critical alert firing for green: {green_page} "
                                    f"(green checkout fails for 30 % of carts)"), event["line"]
    assert "rollback.md#critical-alert-firing" in event["line"]
    assert event["weights_after_rollback"]["green"] == 0
    assert event["decided_at"] - started < 5


def test_a_gate_that_cannot_read_alertmanager_never_promotes(under_traffic, monkeypatch):
    connection = under_traffic.connections()["alertmanager_default"]
    connection["port"] = connection["port"] + 7  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_ALERTMANAGER_DEFAULT", json.dumps(connection))
    event = run_gate(50, bake_seconds=2, window_seconds=2, step_timeout_seconds=4)
    assert event["status"] == "inconclusive", event["line"]
    assert "alerts unknown: Alertmanager could not be read: GET http://127.0.0.1:" in event["reason"]
    assert event["reason"].endswith("/api/v2/alerts failed: connection refused")
    HAProxyHook().set_green_percent(50)  # the reflex rollback put traffic back: the fixture expects 50 %
