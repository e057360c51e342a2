"""Stage 1's check_metric_templates against canned Prometheus answers (the real PrometheusHook
parsing them, tests/unit/conftest.py): every template parses, answers at most one series, and
``up`` has a target; otherwise the run is refused naming the template."""

from __future__ import annotations

import pytest
import requests
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.plan import load_plan
from cutover_kit.stages import deployment_readiness
from cutover_kit.stages.deployment_readiness import TemplateCheck

PLAN_METRICS = load_plan("rehearsal").metrics


def healthy_answer(answers):
    def answer(promql):
        return answers.vector("1" if promql.startswith("max(up") else "0.02" if "histogram_quantile" in promql else "0")
    return answer


def test_every_template_answering_one_series_passes(prometheus, answers):
    source = prometheus(healthy_answer(answers))
    check = TemplateCheck(source, PLAN_METRICS, 10, 0.95)
    assert check.refusals == [] and check.unavailable == []
    assert check.values[:4] == ["blue.requests = 0", "blue.errors = 0", "blue.up = 1", "blue.latency_buckets = 0.02"]
    # All nine one-number measures of each color (jobs, WebSockets, memory and CPU included) and
    # green's forwarded requests (the per-route histogram answers one series per route and is not
    # checked here); the gauges (up, open WebSocket connections, memory) are read now, every
    # counted measure over the window.
    assert len(source.queries) == 19
    assert all("[10s]" in q for q in source.queries
               if not q.startswith(("max(up", "sum(actioncable_", "sum(ws_", "sum(process_resident_memory_bytes")))


def test_a_template_returning_several_series_is_refused_with_its_name_and_labels(prometheus, answers):
    def answer(promql):
        if 'color="green"' in promql and 'code=~"5.."' in promql:
            return answers.vector("1", "2", "3", "4")
        return healthy_answer(answers)(promql)
    check = TemplateCheck(prometheus(answer), PLAN_METRICS, 10, 0.95)
    [refusal] = check.refusals
    assert refusal.startswith('metric template green.errors returns 4 series: {series="0"}; {series="1"}; {series="2"}; ...'), refusal


def test_a_template_prometheus_cannot_parse_is_refused_and_an_unreachable_one_is_retried(prometheus, answers):
    def answer(promql):
        if promql.startswith("histogram_quantile") and 'color="blue"' in promql:
            return answers.http(400, {"status": "error", "errorType": "bad_data", "error": "1:20: parse error: unexpected"})
        if 'color="green"' in promql and "http_requests_total" in promql and not promql.startswith("histogram_quantile"):
            raise requests.ConnectionError("[Errno 111] Connection refused")
        return healthy_answer(answers)(promql)
    check = TemplateCheck(prometheus(answer), PLAN_METRICS, 10, 0.95)
    assert check.refusals == [
        "metric template blue.latency_buckets does not parse: Prometheus refused query "
        "'histogram_quantile(0.95, sum by (le) (rate(http_server_request_duration_seconds_bucket{job=\"apps\",color=\"blue\",path=~\"/api/.*\"}[10s])))': "
        "HTTP 400 1:20: parse error: unexpected"]
    assert [line.split(":")[0] for line in check.unavailable] == ["metric template green.requests", "metric template green.errors"]


def test_no_data_is_fine_except_for_up(prometheus, answers):
    def answer(promql):
        return answers.vector() if ('color="green"' in promql and not promql.startswith("histogram")) else healthy_answer(answers)(promql)
    check = TemplateCheck(prometheus(answer), PLAN_METRICS, 10, 0.95)
    assert [refusal.split(":")[0:2] for refusal in check.refusals] == [
        ["metric template green.up returns no data", " Prometheus has no scrape target for green"]]
    assert "green.requests no data yet" in check.values


@pytest.fixture
def stage_one(monkeypatch, prometheus):
    def run(answer, plan_name="rehearsal"):
        plan = load_plan(plan_name)
        monkeypatch.setattr(deployment_readiness, "plan_of_run", lambda task_id: plan)
        monkeypatch.setattr("cutover_kit.hooks.prometheus.PrometheusHook", lambda: prometheus(answer))
        return deployment_readiness.check_metric_templates("stage_01_deployment_readiness.validate_plan")
    return run


def test_the_task_refuses_the_run_naming_the_template_and_retries_when_prometheus_is_away(stage_one, answers):
    result = stage_one(healthy_answer(answers))
    assert result["verdict"] == "PASS" and result["reason"].startswith("Metric templates (sandbox_apps) parse")
    with pytest.raises(AirflowFailException, match=r"Metric templates \(sandbox_apps\) refused: metric template blue.up returns 2 series"):
        stage_one(lambda promql: answers.vector("1", "1") if promql == PLAN_METRICS.up("blue") else healthy_answer(answers)(promql))
    with pytest.raises(AirflowException, match="Prometheus did not answer") as raised:
        stage_one(lambda promql: answers.http(503, "Service Unavailable"))
    assert not isinstance(raised.value, AirflowFailException)  # retried, not final
