"""The gate's whole "monitor closely" list on a real sandbox under traffic: every template of the
sandbox_apps set answers for both colors from the real apps' /metrics, an absent metric reads as
no data (never zero), each live app runs its statements under its own database role, and one
trigger poll judges every whole-list limit and names the route and statement slowest on green."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time

import psycopg2
import pytest

from cutover_kit.flags.flagd_file import FlagdFileStore
from cutover_kit.flags.model import FlagState, apply_flags
from cutover_kit.hooks.haproxy import HAProxyHook
from cutover_kit.hooks.prometheus import PrometheusHook
from cutover_kit.measure import measure_color
from cutover_kit.measure_vitals import connected_meter
from cutover_kit.plan import load_plan
from cutover_kit.promql import MetricTemplates
from cutover_kit.slo import Verdict, judge_window
from cutover_kit.triggers.slo_gate import SLOGateTrigger
from sandbox.launcher.postgres import APP_ROLES
from sandbox.traffic import TrafficGenerator

pytestmark = pytest.mark.timeout(300)
PLAN = load_plan("rehearsal")
WINDOW = 10
LOOSE_LIMITS = {
    "min_throughput_ratio_vs_blue": 0.5, "min_job_rate_ratio_vs_blue": 0.3, "max_job_failure_ratio_delta_vs_blue": 0.05,
    "min_websocket_ratio_vs_blue": 0.5, "max_memory_ratio_vs_blue": 3.0, "max_cpu_per_request_ratio_vs_blue": 5.0,
    "max_db_statement_time_ratio_vs_blue": 5.0,
}


@pytest.fixture(scope="module")
def at_50(sandbox):
    """Green at 50 % with its features on (as a traffic step sets the flags), 40 rps through the
    router for a full judging window."""
    saved = dict(os.environ)
    for conn_id, connection in sandbox.connections().items():
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
    apply_flags(FlagdFileStore(sandbox.config.flags_file), FlagState.for_step(50))
    HAProxyHook().set_green_percent(50)
    generator = TrafficGenerator(sandbox.config.router_url, rps=40, max_seconds=200, seed=23).start()
    try:
        time.sleep(WINDOW + 4)
        yield sandbox
    finally:
        generator.stop()
        HAProxyHook().set_green_percent(0)
        os.environ.clear()
        os.environ.update(saved)


def poll(meter, source, metrics=PLAN.metrics, green_percent=50.0):
    quantiles = tuple(PLAN.slo.quantiles)
    return meter.alongside(lambda: measure_color(source, "green", WINDOW, quantiles, metrics),
                           lambda: measure_color(source, "blue", WINDOW, quantiles, metrics),
                           source, WINDOW, green_percent, quantiles, quantiles[0])


def test_every_whole_list_template_answers_for_both_colors_from_the_real_apps(at_50):
    meter = connected_meter(PLAN.metrics, None)
    green, blue, reading = poll(meter, PrometheusHook())
    for vitals in (reading.green, reading.blue):
        figures = {name: getattr(vitals, name) for name in ("memory_bytes", "cpu_cores", "jobs_processed", "jobs_failed",
                                                            "websocket_connections")}
        assert all(value is not None for value in figures.values()), (vitals.color, figures)
        assert all(value is not None for value in vitals.latency_seconds.values()), vitals.latency_seconds
        assert vitals.memory_bytes > 30 * 2**20 and vitals.cpu_cores > 0 and vitals.jobs_processed > 0
    assert reading.green.forwarded_requests is not None and reading.blue.forwarded_requests is None
    # Blue is two processes (Puma + Sidekiq); the color's memory is both.
    series = PrometheusHook().query('process_resident_memory_bytes{job="apps",color="blue"}')
    assert sorted(sample["metric"].get("process", "web") for sample in series) == ["web", "worker"]
    assert reading.blue.memory_bytes == pytest.approx(sum(float(s["value"][1]) for s in series), rel=0.2)
    # APM: the same routes of the two apps meet despite their label dialects.
    assert {"GET /api/orders/{id}", "GET /api/users/{id}", "POST /api/orders"} <= {slow.name for slow in reading.routes}


def test_an_absent_metric_reads_as_no_data_and_holds_a_set_limit(at_50):
    templates = PLAN.metrics.to_dict()
    templates["green"]["memory_bytes"] = 'sum(no_such_metric_bytes{job="apps",color="green"})'
    metrics = MetricTemplates(templates, "edited")
    green, blue, reading = poll(connected_meter(metrics, None), PrometheusHook(), metrics)
    assert reading.green.memory_bytes is None and reading.blue.memory_bytes is not None
    plan = dataclasses.replace(PLAN, metrics=metrics, slo=dataclasses.replace(PLAN.slo, max_memory_ratio_vs_blue=1.5))
    slo = judge_window(green, blue, plan.slo, min_requests=plan.min_requests, window_seconds=WINDOW)
    judgement = connected_meter(metrics, None).judge(plan, reading, slo)
    assert judgement.verdict is Verdict.INCONCLUSIVE and "no green memory data" in judgement.reason


def test_each_live_app_runs_its_statements_under_its_own_role(at_50):
    with psycopg2.connect(at_50.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name LIKE 'sandbox-app-%%' "
                    "OR usename LIKE 'cutover_app_%%'")
        users = {row[0] for row in cur.fetchall()}
    conn.close()
    assert set(APP_ROLES.values()) <= users, users
    meter = connected_meter(PLAN.metrics, "postgres_default")
    try:
        assert meter.roles == APP_ROLES
        poll(meter, PrometheusHook())
        time.sleep(2)
        _, _, reading = poll(meter, PrometheusHook())
    finally:
        meter.close()
    for vitals in (reading.green, reading.blue):
        assert vitals.db_statement_calls and vitals.db_statement_calls > 0 and vitals.db_statement_ms > 0, vitals
    assert reading.problems == ()
    assert {slow.name for slow in reading.statements} & {"SELECT orders", "INSERT orders", "SELECT users"}


def test_one_gate_poll_judges_every_limit_and_names_the_slowest_route_and_statement(at_50):
    plan = dataclasses.replace(PLAN, slo=dataclasses.replace(PLAN.slo, **LOOSE_LIMITS))
    now = time.time()
    trigger = SLOGateTrigger(step_label="50 %", plan=plan.to_dict(), bake_seconds=3600, step_timeout_seconds=7200,
                             gate_started_at=now, weights_set_at=now - 60, green_percent=50.0,
                             postgres_conn_id="postgres_default")
    source = trigger._metrics_source()

    async def two_polls():
        await trigger._judge_once(source, plan, None)
        await asyncio.sleep(2)
        started = time.perf_counter()
        result = await trigger._judge_once(source, plan, None)
        return result, time.perf_counter() - started
    try:
        (judgement, measurements), seconds = asyncio.run(two_polls())
    finally:
        trigger._whole_list_meter.close()
    whole_list = measurements["whole_list"]
    assert judgement.verdict is not Verdict.FAIL, judgement.reason
    for figure in ("memory", "CPU", "DB statement time", "throughput", "job rate", "failed jobs", "WebSockets"):
        assert f"green {figure} " in judgement.reason, (figure, judgement.reason)
    assert whole_list["green"]["memory_bytes"] and whole_list["blue"]["db_statement_ms"]
    assert whole_list["apm"]["routes"] and whole_list["apm"]["statements"]
    worst = whole_list["apm"]["worst_route"] or whole_list["apm"]["worst_statement"]
    if worst is not None:  # green slower somewhere: the line names it
        assert f"APM, slowest vs blue: " in judgement.reason and worst["name"] in judgement.reason
    json.dumps(measurements)  # the event and XCom carry it as JSON
    assert seconds < 2.0  # a loose bound for a loaded CI machine; benchmarks/gate_poll_cost.py has the figure
