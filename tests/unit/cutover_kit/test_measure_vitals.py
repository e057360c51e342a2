"""cutover_kit.measure_vitals against the real PrometheusHook parsing canned answers
(tests/unit/conftest.py): one batched query for the whole list, absent metrics as no data, several
series refused naming the template, statement time over the meter's own readings."""

from __future__ import annotations

import pytest

from cutover_kit.measure import MeasurementError, measure_color
from cutover_kit.measure_vitals import COLOR_TAG, FIGURE_TAG, WholeListMeter, batched_query, take_batch
from cutover_kit.plan import load_plan
from cutover_kit.slo import Verdict, judge_window

PLAN = load_plan("rehearsal")


def sample(color, figure, value, **labels):
    return {"metric": {COLOR_TAG: color, FIGURE_TAG: figure, **labels}, "value": [1700000000.0, value]}


def whole_list_answer(answers, samples):
    def answer(promql):
        if promql.startswith("label_replace("):
            return answers.http(200, {"status": "success", "data": {"resultType": "vector", "result": samples}})
        return answers.healthy()(promql)
    return answer


SAMPLES = [
    sample("green", "memory_bytes", "131399680"), sample("blue", "memory_bytes", "200798208"),
    sample("green", "cpu_cores", "0.06"), sample("blue", "cpu_cores", "0.13"),
    sample("green", "jobs_processed", "69"), sample("blue", "jobs_processed", "63"),
    sample("green", "jobs_failed", "0"), sample("blue", "jobs_failed", "0"),
    sample("green", "forwarded_requests", "0"),
    sample("green", "p50", "0.0026"), sample("blue", "p50", "NaN"),
    sample("green", "route_latency", "0.030", method="GET", route="/api/orders/{id}"),
    sample("blue", "route_latency", "0.010", method="GET", route="/api/orders/:id"),
    sample("green", "route_latency", "NaN", method="POST", route="/api/users"),
    sample("blue", "route_latency", "0.02", method="POST", route="/api/users"),
]


def poll(meter, source, green_percent=50.0):
    quantiles = tuple(PLAN.slo.quantiles)
    return meter.alongside(lambda: measure_color(source, "green", 10, quantiles, PLAN.metrics),
                           lambda: measure_color(source, "blue", 10, quantiles, PLAN.metrics),
                           source, 10, green_percent, quantiles, quantiles[0])


def test_one_batched_query_reads_the_whole_list_and_absent_metrics_stay_no_data(prometheus, answers):
    source = prometheus(whole_list_answer(answers, SAMPLES))
    green, blue, reading = poll(WholeListMeter(PLAN.metrics), source)
    batched = [q for q in source.queries if q.startswith("label_replace(")]
    assert len(batched) == 1  # one round trip for the whole list of both colors
    assert green.requests == 1000 and reading.green.requests == 1000
    assert reading.green.memory_bytes == 131399680 and reading.blue.cpu_cores == 0.13
    # No WebSocket samples at all (absent metric) and p50 NaN (no requests): no data, never zero.
    assert reading.green.websocket_connections is None and reading.blue.latency_seconds[0.5] is None
    assert reading.green.latency_seconds == {0.5: 0.0026, 0.95: 0.02, 0.99: 0.02}
    assert reading.blue.forwarded_requests is None  # blue's template is null: nothing to ask
    assert reading.green.traffic_share == 0.5 and reading.blue.traffic_share == 0.5
    # Without a database the statement time is no data.
    assert reading.green.db_statement_ms is None and reading.statements == []
    assert [slow.name for slow in reading.routes] == ["GET /api/orders/{id}"]
    assert reading.apm_note() == "APM, slowest vs blue: GET /api/orders/{id} p95 30 ms vs 10 ms (x3.00)"
    assert reading.to_dict()["apm"]["worst_route"]["ratio"] == 3.0


def test_the_batched_query_tags_every_template_and_leaves_null_ones_out():
    parts = WholeListMeter(PLAN.metrics)._parts(10, (0.95, 0.99), 0.95)
    assert ("blue", "forwarded_requests") not in parts and ("green", "forwarded_requests") in parts
    assert ("green", 0.95) not in parts and ("green", 0.5) in parts  # the judge measured p95/p99 already
    promql = batched_query(parts)
    assert promql.count(f'"{COLOR_TAG}", "green"') == len([key for key in parts if key[0] == "green"])
    assert f'"{FIGURE_TAG}", "route_latency"' in promql and "[10s]" in promql


def test_a_template_answering_several_series_is_a_measurement_error_naming_it(prometheus, answers):
    doubled = SAMPLES + [sample("green", "memory_bytes", "1", process="worker")]
    with pytest.raises(MeasurementError, match=r"green\.memory_bytes answered several series"):
        poll(WholeListMeter(PLAN.metrics), prometheus(whole_list_answer(answers, doubled)))


def test_prometheus_failing_the_batched_query_names_it_shortly(prometheus, answers):
    def answer(promql):
        if promql.startswith("label_replace("):
            return answers.http(503, "overloaded")
        return answers.healthy()(promql)
    with pytest.raises(MeasurementError) as raised:
        take_batch(prometheus(answer), WholeListMeter(PLAN.metrics)._parts(10, (), 0.95))
    assert "measuring both colors whole list" in str(raised.value) and "the whole-list query" in str(raised.value)
    assert "label_replace" not in str(raised.value)  # not 4 kB of PromQL in a log line


class Statements:
    """pg_stat_statements rows per role, growing like the real view between readings."""

    def __init__(self):
        self.readings = 0

    def __call__(self):
        self.readings += 1
        n = self.readings
        return {"cutover_app_blue": [{"query": 'SELECT "orders".* FROM "orders"', "calls": 100 * n, "total_ms": 10.0 * n}],
                "cutover_app_green": [{"query": "SELECT id FROM orders", "calls": 100 * n, "total_ms": 40.0 * n}]}


def test_statement_time_per_color_is_the_difference_of_the_meter_s_readings(prometheus, answers):
    clock = iter(range(100))
    meter = WholeListMeter(PLAN.metrics, roles={"blue": "cutover_app_blue", "green": "cutover_app_green"},
                           statements=Statements(), clock=lambda: float(next(clock)))
    source = prometheus(whole_list_answer(answers, SAMPLES))
    _, _, first = poll(meter, source)
    assert first.green.db_statement_ms is None  # one reading: no interval yet
    _, _, second = poll(meter, source)
    assert second.green.db_statement_ms == pytest.approx(0.4) and second.blue.db_statement_ms == pytest.approx(0.1)
    assert second.green.db_statement_calls == 100
    assert [(slow.name, round(slow.ratio, 2)) for slow in second.statements] == [("SELECT orders", 4.0)]
    assert "SELECT orders 0.40 ms vs 0.10 ms per statement (x4.00)" in second.apm_note()


def test_an_unreadable_statement_view_is_no_data_with_the_reason(prometheus, answers):
    def broken():
        raise RuntimeError("pg_stat_statements: connection refused")
    meter = WholeListMeter(PLAN.metrics, roles={"blue": "a", "green": None}, statements=broken)
    _, _, reading = poll(meter, prometheus(whole_list_answer(answers, SAMPLES)))
    assert reading.green.db_statement_ms is None and reading.blue.db_statement_ms is None
    assert reading.problems == ("database statement time of green unknown: its app Connection names no database_role",
                                "database statement time unavailable: pg_stat_statements: connection refused")


def test_judge_folds_the_plan_s_limits_into_the_slo_judgement(prometheus, answers):
    import dataclasses
    plan = dataclasses.replace(PLAN, slo=dataclasses.replace(PLAN.slo, max_memory_ratio_vs_blue=0.5,
                                                             min_websocket_ratio_vs_blue=0.5))
    meter = WholeListMeter(plan.metrics)
    green, blue, reading = poll(meter, prometheus(whole_list_answer(answers, SAMPLES)))
    slo = judge_window(green, blue, plan.slo, min_requests=plan.min_requests, window_seconds=10)
    judgement = meter.judge(plan, reading, slo)
    assert judgement.verdict is Verdict.FAIL
    assert judgement.reason.startswith("green memory 125 MiB > 0.5 x blue 191 MiB; ")
    assert "no green WebSockets data" in judgement.doubts
