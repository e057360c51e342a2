"""The router hook against real HAProxy, PrometheusHook against real Prometheus, and the SLO gate
trigger judging real traffic, all through Airflow Connections given as AIRFLOW_CONN_* variables."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from cutover_kit.hooks.haproxy import HAProxyHook
from cutover_kit.hooks.prometheus import PrometheusHook, PrometheusNoData, PrometheusUnavailable
from cutover_kit.plan import list_metric_templates, load_metric_templates, load_plan
from cutover_kit.promql import MetricTemplates
from cutover_kit.stages.deployment_readiness import TemplateCheck
from cutover_kit.flags.model import FlagState
from cutover_kit.routing import RouterError
from cutover_kit.actions.flags import apply_everywhere
from cutover_kit.hooks.flags import flag_store
from cutover_kit.hooks.levers import app_reports
from cutover_kit.triggers.slo_gate import SLOGateTrigger
from sandbox.faults import FaultController
from sandbox.traffic import TrafficGenerator, report

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def connections(sandbox, use_connections):
    use_connections(sandbox)
    yield
    HAProxyHook().set_green_percent(0)
    FaultController(sandbox.config).clear("green")
    apply_everywhere(FlagState.rails(), "file", flag_store, app_reports)


@pytest.fixture
def traffic(sandbox):
    generator = TrafficGenerator(sandbox.config.router_url, rps=60, max_seconds=90, seed=3)
    generator.start()
    yield generator
    generator.stop()


def test_weights_are_applied_read_back_and_idempotent():
    router = HAProxyHook()
    for percent in (5, 25, 25, 50, 100, 0):
        weights = router.set_green_percent(percent)
        assert weights.green_percent == percent
        assert router.read_weights() == weights
    assert router.server_states() == {"blue": "UP", "green": "UP"}


def test_the_sandbox_router_routes_a_cohort_member_to_green_through_the_hook(sandbox):
    import requests

    router = HAProxyHook()
    assert not router.user_routing_enabled()  # the sandbox starts with routing by user off
    try:
        router.set_user_routing(True)
        assert router.replace_cohort_map({"7": "beta"}).entries == 1 and router.read_cohort_map() == {"7": "beta"}
        router.set_green_percent(5)
        with requests.Session() as session:
            served = {session.get(f"{sandbox.config.router_url}/api/users/7", headers={"X-User-Id": "7"},
                                  timeout=5).headers["X-Backend-Server"] for _ in range(10)}
        assert served == {"green"}
    finally:
        router.set_user_routing(False)
        router.clear_cohort_map()


def test_unknown_backend_is_a_clear_error(monkeypatch, sandbox):
    broken = dict(sandbox.connections()["haproxy_default"])
    broken["extra"] = {**broken["extra"], "backend": "nope"}
    monkeypatch.setenv("AIRFLOW_CONN_HAPROXY_BROKEN", json.dumps(broken))
    with pytest.raises(RouterError, match="nope"):
        HAProxyHook("haproxy_broken").read_weights()


def test_weight_changes_under_load_fail_no_request_and_split_traffic(sandbox, traffic):
    router = HAProxyHook()
    time.sleep(2)  # let the generator reach its pace before measuring
    for _ in range(3):
        for percent in (5, 25, 50, 100, 50, 25, 5, 0):
            router.set_green_percent(percent)
            time.sleep(0.4)
    router.set_green_percent(25)
    split_started = time.time()
    time.sleep(6)
    traffic.stop()
    ledger = list(traffic.ledger)
    outcome = report(ledger, sandbox.config.app_dsn(), [])
    assert outcome["failed"] == 0, outcome
    assert outcome["writes_lost"] == 0
    during_split = [entry for entry in ledger if entry["t"] > split_started + 0.5 and entry["status"]]
    green_share = sum(entry["color"] == "green" for entry in during_split) / len(during_split)
    assert 0.15 < green_share < 0.35, f"green served {green_share:.0%} at a 25 % weight"


def test_prometheus_hook_answers_and_distinguishes_no_data():
    hook = PrometheusHook()
    assert hook.is_online()
    assert hook.query_value('max(up{job="apps",color="blue"})') == 1.0
    with pytest.raises(PrometheusNoData):
        hook.query_value('up{job="does-not-exist"}')
    assert hook.query_optional('up{job="does-not-exist"}') is None
    with pytest.raises(PrometheusUnavailable, match="refused query"):
        hook.query_value("sum(rate(")


def test_prometheus_down_is_unavailable_not_zero(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PROMETHEUS_DOWN", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": 9}))
    hook = PrometheusHook("prometheus_down", timeout_seconds=0.5)
    assert not hook.is_online()
    with pytest.raises(PrometheusUnavailable, match="did not answer"):
        hook.query_value("up")


@pytest.mark.parametrize("name", list_metric_templates())
def test_every_shipped_metric_template_set_passes_stage_one_against_real_prometheus(name, traffic):
    time.sleep(3)  # a few scrapes of real traffic, so rates and quantiles have samples
    templates = MetricTemplates(load_metric_templates(name), name)
    check = TemplateCheck(PrometheusHook(), templates, 10, 0.95)
    assert check.refusals == [] and check.unavailable == [], check.refusals + check.unavailable
    assert "blue.up = 1" in check.values and "green.up = 1" in check.values, check.values
    assert any(value.startswith("blue.requests = ") and value != "blue.requests = 0" for value in check.values), check.values
    if name == "sandbox_apps":  # each app's own job counters and WebSocket gauge answer (pre-created at 0)
        for measure in ("jobs_processed", "jobs_failed", "websocket_connections"):
            assert {f"{color}.{measure}" for color in ("blue", "green")} <= {value.split(" = ")[0] for value in check.values}, check.values


def test_stage_one_refuses_a_template_that_does_not_parse_or_returns_several_series(traffic):
    time.sleep(2)
    own = dict(load_metric_templates("sandbox_apps"))
    own["green"] = {**own["green"],
                    "errors": 'sum by (route) (increase(http_requests_total{job="apps",color="green",route=~"/api/.*"}[{window}]))',
                    "requests": 'sum(increase(http_requests_total{job="apps",color="green"}[{window}])'}
    check = TemplateCheck(PrometheusHook(), MetricTemplates(own), 10, 0.95)
    assert len(check.refusals) == 2 and check.unavailable == [], check.refusals
    parse, several = check.refusals
    assert parse.startswith("metric template green.requests does not parse: Prometheus refused query") and "HTTP 400" in parse
    assert several.startswith("metric template green.errors returns ") and 'route="/api/' in several, several


def run_gate(percent: int, **plan_overrides) -> dict:
    plan = load_plan("rehearsal", {"bake_seconds": 4, "window_seconds": 4, "min_requests": 5, **plan_overrides}).to_dict()
    apply_everywhere(FlagState.for_step(percent), "file", flag_store, app_reports)  # as each DAG step does before its weights
    weights = HAProxyHook().set_green_percent(percent)
    assert weights.green_percent == percent
    trigger = SLOGateTrigger(
        step_label=f"{percent} %", plan=plan, bake_seconds=plan["bake_seconds"], step_timeout_seconds=plan["step_timeout_seconds"],
        gate_started_at=time.time(), weights_set_at=time.time(), haproxy_conn_id="haproxy_default",
    )

    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first_event(), timeout=60))


def test_gate_promotes_healthy_green(traffic):
    event = run_gate(50)
    assert event["status"] == "success", event["line"]
    assert event["line"].startswith("Promote past 50 %: green 5xx 0.0 %")
    assert HAProxyHook().read_weights().green_percent == 50  # a pass moves nothing


def test_gate_halts_on_green_errors_and_puts_traffic_back_on_blue(sandbox, traffic):
    FaultController(sandbox.config).inject("green", "errors", error_fraction=0.3)
    event = run_gate(50)
    assert event["status"] == "failed"
    assert event["line"].startswith("Halt at 50 %: green 5xx") and "> 1.0 %" in event["line"]
    assert event["weights_after_rollback"] == {"blue": 100, "green": 0}
    assert 0 <= event["traffic_restored_at"] - event["decided_at"] < 1.0
    assert HAProxyHook().read_weights().green_percent == 0
    # Two levels, in order: every app serves Rails (verified) before the traffic moved.
    assert event["decided_at"] <= event["flags_restored_at"] <= event["traffic_restored_at"], event
    assert event["flags_after_rollback"]["green.feature.users"] is False
    assert app_reports()["app_green"]["serves_rails"] is True


def test_gate_with_prometheus_silent_never_promotes(monkeypatch, traffic):
    monkeypatch.setenv("AIRFLOW_CONN_PROMETHEUS_DEFAULT", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": 9}))
    event = run_gate(5, step_timeout_seconds=6)
    assert event["status"] == "inconclusive"
    assert "Prometheus unavailable" in event["reason"]
    assert HAProxyHook().read_weights().green_percent == 0
