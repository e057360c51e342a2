"""Per-color metric templates: the shipped sets, the plan's two ways to choose them, the text
checks, and measuring and judging with a set that has no latency histogram."""

from __future__ import annotations

import textwrap

import pytest

from cutover_kit.measure import measure_color
from cutover_kit.plan import CutoverPlan, PlanError, list_metric_templates, load_metric_templates, load_plan
from cutover_kit.promql import MetricTemplates
from cutover_kit.slo import ColorWindow, Verdict, judge_window

SHIPPED = ("haproxy", "sandbox_apps")


def test_the_shipped_sets_load_and_the_shipped_plans_select_the_real_apps_set():
    assert set(list_metric_templates()) == set(SHIPPED)
    for name in SHIPPED:
        MetricTemplates(load_metric_templates(name), name)
    for plan_name in ("default", "rehearsal"):
        plan = load_plan(plan_name)
        assert plan.metric_templates == "sandbox_apps"
        assert plan.metrics.to_dict() == load_metric_templates("sandbox_apps")


def test_the_real_apps_set_renders_each_app_s_own_names_with_the_window():
    metrics = load_plan("rehearsal").metrics
    assert metrics.requests("blue", 10) == 'sum(increase(http_server_requests_total{job="apps",color="blue",path=~"/api/.*"}[10s]))'
    assert metrics.errors("blue", 4) == (
        'sum(increase(http_server_requests_total{job="apps",color="blue",path=~"/api/.*",code=~"5.."}[4s])) or vector(0)')
    assert metrics.latency_quantile("blue", 0.99, 10) == (
        'histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{job="apps",color="blue",path=~"/api/.*"}[10s])))')
    assert metrics.up("green") == 'max(up{job="apps",color="green"})'
    assert metrics.render("green", "jobs_processed", 10) == 'sum(increase(bullmq_jobs_completed_total{job="apps",color="green"}[10s]))'


def test_the_real_apps_set_counts_green_s_own_and_forwarded_requests_and_each_app_s_names():
    metrics = MetricTemplates(load_metric_templates("sandbox_apps"), "sandbox_apps")
    green_requests, green_errors = metrics.requests("green", 10), metrics.errors("green", 10)
    for query in (green_requests, green_errors):
        assert "http_requests_total{" in query and "http_forwarded_requests_total{" in query and "[10s]" in query
    assert 'status_code=~"5.."' in green_errors and "{window}" not in green_errors
    assert "http_forward_duration_seconds_bucket" in metrics.latency_quantile("green", 0.95, 10)
    assert metrics.requests("blue", 10).startswith("sum(increase(http_server_requests_total{") and 'path=~"/api/.*"' in metrics.requests("blue", 10)
    assert "sidekiq_jobs_failed_total" in metrics.render("blue", "jobs_failed", 10)
    assert "bullmq_jobs_completed_total" in metrics.render("green", "jobs_processed", 10)
    assert metrics.render("blue", "websocket_connections", 10) == 'sum(actioncable_connections{job="apps",color="blue"})'
    assert metrics.render("green", "websocket_connections", 10) == 'sum(ws_connections_active{job="apps",color="green"})'


def test_the_real_apps_set_measures_the_rest_of_the_whole_list_per_color():
    metrics = MetricTemplates(load_metric_templates("sandbox_apps"), "sandbox_apps")
    # Memory and CPU: every process of the color (blue's Puma and Sidekiq series add up).
    assert metrics.render("blue", "memory_bytes", 10) == 'sum(process_resident_memory_bytes{job="apps",color="blue"})'
    assert metrics.render("green", "cpu_cores", 10) == 'sum(rate(process_cpu_seconds_total{job="apps",color="green"}[10s]))'
    # Green's forwarded requests, counted by blue too; Rails forwards nothing.
    assert "http_forwarded_requests_total" in metrics.render("green", "forwarded_requests", 10)
    assert metrics.render("blue", "forwarded_requests", 10) is None
    # APM: one series per (method, route); Rails' `path` becomes `route`.
    blue_routes = metrics.route_latency_quantile("blue", 0.95, 10)
    assert blue_routes.startswith("histogram_quantile(0.95, sum by (le, method, route) (label_replace(")
    assert '"route", "$1", "path", "(.*)"' in blue_routes and "[10s]" in blue_routes
    assert "http_forward_duration_seconds_bucket" in metrics.route_latency_quantile("green", 0.95, 10)
    # Vectors are not stage 1's one-series check.
    assert not any(name.endswith("route_latency_buckets") for name, _ in metrics.checks(10, 0.95))


@pytest.mark.parametrize("green_routes, message", [
    (None, "route_latency_buckets is set for blue only"),
    ("'sum by (le) (rate(h_bucket[{window}]))'", "green.route_latency_buckets must aggregate by \\(le, method, route\\)"),
])
def test_route_templates_come_in_pairs_and_keep_their_route(green_routes, message):
    sets = load_metric_templates("sandbox_apps")
    sets["green"] = {**sets["green"], "route_latency_buckets": None if green_routes is None else green_routes.strip("'")}
    with pytest.raises(ValueError, match=message):
        MetricTemplates(sets, "edited")


def test_the_haproxy_set_reads_per_server_counters_and_declares_latency_unavailable():
    metrics = MetricTemplates(load_metric_templates("haproxy"), "haproxy")
    assert not metrics.latency_available and metrics.latency_quantile("green", 0.95, 10) is None
    assert metrics.errors("green", 10).startswith(
        'sum(increase(haproxy_server_http_responses_total{job="haproxy",proxy="app",server="green",code="5xx"}[10s]))')
    assert [name for name, _ in metrics.checks(10, 0.95)] == [
        "blue.requests", "blue.errors", "blue.up", "green.requests", "green.errors", "green.up"]


def write_plan(tmp_path, extra: str):
    text = textwrap.dedent("""\
        steps: [5, 25, 50, 100]
        bake_seconds: 10
        step_timeout_seconds: 40
        poll_interval_seconds: 1
        window_seconds: 10
        min_requests: 15
        consecutive_breaches: 2
        standby_seconds: 20
        rollback_drill_percent: 1
        baseline_seconds: 8
        """) + textwrap.dedent(extra)
    path = tmp_path / "custom.yaml"
    path.write_text(text)
    return str(path)


INLINE = """\
    metrics:
      blue:
        requests: 'sum(increase(app_requests{side="old"}[{window}]))'
        errors: 'sum(increase(app_requests{side="old",status="500"}[{window}])) or vector(0)'
        up: 'max(up{side="old"})'
      green:
        requests: 'sum(increase(app_requests{side="new"}[{window}]))'
        errors: 'sum(increase(app_requests{side="new",status="500"}[{window}])) or vector(0)'
        up: 'max(up{side="new"})'
    """


def test_a_plan_may_write_its_own_templates_and_they_survive_xcom(tmp_path):
    plan = load_plan(write_plan(tmp_path, INLINE))
    assert plan.metric_templates is None and not plan.metrics.latency_available
    assert plan.metrics.requests("green", 6) == 'sum(increase(app_requests{side="new"}[6s]))'
    document = plan.to_dict()
    assert document["metric_templates"] is None and document["metrics"]["green"]["jobs_failed"] is None
    assert CutoverPlan.from_dict(document) == plan


def test_a_plan_without_metric_templates_gets_the_default_set(tmp_path):
    assert load_plan(write_plan(tmp_path, "")).metric_templates == "sandbox_apps"
    assert load_plan(write_plan(tmp_path, "metric_templates: haproxy\n")).metrics.errors("blue", 10).startswith(
        "sum(increase(haproxy_server_http_responses_total")


@pytest.mark.parametrize("extra, message", [
    ("metric_templates: nope\n", r"metric_templates: metric templates 'nope': no file .*nope.yaml \(sets in .*: haproxy, sandbox_apps"),
    ("metric_templates: sandbox_apps\n" + textwrap.dedent(INLINE), "give metric_templates .* or metrics .*, not both"),
    (textwrap.dedent(INLINE).replace("[{window}]", "[30s]", 1), r"metric template blue.requests must count over \{window\}"),
    (textwrap.dedent(INLINE).replace("[{window}]", "[{windw}]", 1), r"metric template blue.requests has unknown placeholder\(s\) \{windw\}"),
    (textwrap.dedent(INLINE).replace("  green:\n", "    latency_buckets: 'sum by (le) (rate(h_bucket[{window}]))'\n  green:\n"),
     "latency_buckets is set for blue only"),
    (textwrap.dedent(INLINE).replace("    up: 'max(up{side=\"new\"})'\n", ""), r"metrics.green: 'up' is a required property"),
    (textwrap.dedent(INLINE).replace("  blue:\n", "  blue:\n    p50: 'x'\n"), r"metrics.blue: Additional properties"),
])
def test_bad_templates_are_refused_naming_the_template(tmp_path, extra, message):
    with pytest.raises(PlanError, match=message):
        load_plan(write_plan(tmp_path, extra))


def test_a_set_without_latency_measures_none_and_the_judge_says_latency_was_not_judged(prometheus, answers):
    plan = load_plan("rehearsal", {})
    haproxy = MetricTemplates(load_metric_templates("haproxy"), "haproxy")
    source = prometheus(lambda promql: answers.vector("1" if "haproxy_server_status" in promql else "0" if 'code="5xx"' in promql else "400"))
    green = measure_color(source, "green", 10, (0.95, 0.99), haproxy)
    blue = measure_color(source, "blue", 10, (0.95, 0.99), haproxy)
    assert green == ColorWindow("green", 400.0, 0.0, {}, True)
    assert not any("histogram_quantile" in query for query in source.queries)
    judged = judge_window(green, blue, plan.slo, min_requests=15, window_seconds=10, judge_latency=False)
    assert judged.verdict is Verdict.PASS and "latency not judged" in judged.reason, judged.reason
    # The same empty latency with the judge told to judge it is "no data", never a pass.
    assert judge_window(green, blue, plan.slo, min_requests=15, window_seconds=10).verdict is Verdict.INCONCLUSIVE


def test_with_a_confidence_z_each_quantile_is_also_read_at_its_bound_levels(prometheus, answers):
    from cutover_kit.slo import quantile_confidence_levels

    templates = MetricTemplates(load_metric_templates("sandbox_apps"), "sandbox_apps")

    def answer(promql: str):
        if promql.startswith("histogram_quantile("):
            level = float(promql[len("histogram_quantile("):].split(",", 1)[0])
            return answers.vector(str(level / 10))  # seconds grow with the level: easy to tell apart
        return answers.vector("1" if promql.startswith("max(up") else "0" if "5" in promql.split("{", 1)[-1][:40] and "status" in promql else "400")

    source = prometheus(answer)
    green = measure_color(source, "green", 10, (0.95,), templates, 1.96)
    low, high = quantile_confidence_levels(0.95, green.requests, 1.96)
    assert green.latency_seconds == {0.95: pytest.approx(0.095)}
    assert green.latency_bounds == {0.95: (pytest.approx(low / 10), pytest.approx(high / 10))}
    assert sum(query.startswith("histogram_quantile(") for query in source.queries) == 3
    # Without a z (stage 1's template check, older callers) only the point is read.
    assert measure_color(source, "blue", 10, (0.95,), templates).latency_bounds == {}
