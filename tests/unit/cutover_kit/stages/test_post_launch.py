"""Stage 15's task: it reads this run's XComs (fake task instance), queries Prometheus through a
fake range source, writes the report under the per-run directory and returns {html, charts}; a
Prometheus that does not answer is a note in the report, never a failure."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cutover_kit.hooks.prometheus import PrometheusUnavailable
from cutover_kit.stages import post_launch
from tests.unit.cutover_kit.report.records import PLAN, T0, rolled_back_facts

from cutover_kit.plan import load_plan

PLAN_OF_RUN = load_plan("rehearsal")
FULL_PLAN = PLAN_OF_RUN.to_dict()


class FakeTI:
    dag_id, run_id, task_id = "cutover", "manual__2027-01-15T10:00:00+00:00", "stage_15_post_launch.write_report"

    def __init__(self, facts, extra_xcoms=None) -> None:
        self.facts = {f.task_id: f for f in facts}
        self.extra_xcoms = extra_xcoms or {}  # {(task_id, key): value} for the keys TaskFacts has no field for
        self.pulls: list[tuple[str, str]] = []

    def get_task_states(self, dag_id: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
        return {self.run_id: {task_id: f.state for task_id, f in self.facts.items()}}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        self.pulls.append((task_ids, key))
        if (task_ids, key) in self.extra_xcoms:
            return self.extra_xcoms[(task_ids, key)]
        facts = self.facts.get(task_ids)
        if facts is None:  # as Airflow's: no such task in this run, no value
            return None
        return {"return_value": facts.return_value, "gate_result": facts.gate_result, "smoke_result": facts.smoke_result,
                "validation_failure": facts.validation_failure}.get(key)


class RangeSource:
    """Stands in for PrometheusHook.query_range: a flat series per query, or an error."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.queries = error, []

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        self.queries.append((promql, start, end, step))
        if self.error:
            raise self.error
        value = "0.02" if "histogram_quantile" in promql else "0" if "5.." in promql else "40"
        t = start
        values = []
        while t <= end:
            values.append([t, value])
            t += step
        return [{"metric": {}, "values": values}]


def tasks_of(facts) -> list[Any]:
    """The DAG's tasks as the gathering sees them: a task id, and gates are SLOGateOperators."""
    from cutover_kit.sensors.slo_gate import SLOGateOperator

    tasks = []
    for f in facts:
        task = SLOGateOperator.__new__(SLOGateOperator) if f.task_id.endswith("slo_gate") else SimpleNamespace()
        object.__setattr__(task, "task_id", f.task_id)  # BaseOperator's __setattr__ wants a constructed operator
        tasks.append(task)
    return tasks


def test_the_report_dir_is_per_dag_and_run(monkeypatch, tmp_path):
    monkeypatch.delenv(post_launch.REPORT_DIR_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert post_launch.report_dir_for("cutover", "manual__2027-01-15T10:00:00+00:00") == \
        tmp_path / "reports" / "cutover" / "manual__2027-01-15T10_00_00_00_00"
    monkeypatch.setenv(post_launch.REPORT_DIR_ENV, "/srv/reports")
    assert post_launch.report_dir_for("cutover", "r1") == Path("/srv/reports/cutover/r1")
    assert post_launch.report_dir_for("cutover", "r1", "/elsewhere") == Path("/elsewhere/cutover/r1")


def test_gathering_reads_each_tasks_own_xcoms_and_skips_tasks_that_never_ran():
    ti = FakeTI(rolled_back_facts())
    facts = {f.task_id: f for f in post_launch.gather_task_facts(ti, tasks_of(rolled_back_facts()))}
    assert facts["stage_10_traffic_migration.step_25.slo_gate"].gate_result["status"] == "failed"
    assert facts["rollback.halt_at_25"].return_value["step"] == "25 %"
    assert ("stage_10_traffic_migration.step_50.set_weights", "return_value") not in ti.pulls  # skipped
    assert ("rollback.halt_at_25", "gate_result") not in ti.pulls  # only gates are asked for their event


def test_series_come_from_the_plans_templates_over_the_runs_interval():
    source = RangeSource()
    series, note = post_launch.gather_series(FULL_PLAN, T0, T0 + 600, source)
    assert note is None
    assert {(s.measure, s.color) for s in series} >= {("traffic_share", "green"), ("error_ratio", "blue"), ("p99", "green")}
    assert all(start == T0 and end == T0 + 600 and step == 1 for _, start, end, step in source.queries)
    window = max(PLAN_OF_RUN.window_seconds, 1)
    assert PLAN_OF_RUN.metrics.requests("green", window) in [q for q, *_ in source.queries]


def test_a_silent_prometheus_is_a_note_not_a_failure():
    series, note = post_launch.gather_series(FULL_PLAN, T0, T0 + 600, RangeSource(PrometheusUnavailable("refused")))
    queries = 10 if PLAN_OF_RUN.metrics.latency_available else 4
    assert series == [] and note.startswith(f"{queries} of {queries} range queries failed; first: blue requests: refused")
    assert post_launch.gather_series(None, T0, T0 + 1, RangeSource())[1].startswith("no plan recorded")
    assert "interval is empty" in post_launch.gather_series(FULL_PLAN, T0, T0 - 1, RangeSource())[1]


def test_the_task_writes_the_report_and_returns_its_paths(monkeypatch, tmp_path):
    facts = [f if f.task_id != "stage_01_deployment_readiness.validate_plan" else
             type(f)(f.task_id, f.state, FULL_PLAN) for f in rolled_back_facts()]
    ti = FakeTI(facts)
    started = time.time() - 600
    context = {"ti": ti, "dag_run": SimpleNamespace(start_date=datetime.fromtimestamp(started, tz=timezone.utc)),
               "dag": SimpleNamespace(tasks=tasks_of(facts))}
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: context)
    monkeypatch.setattr("cutover_kit.hooks.prometheus.PrometheusHook", lambda conn_id: RangeSource())
    result = post_launch.write_post_launch_report(report_dir=str(tmp_path))
    run_dir = tmp_path / "cutover" / "manual__2027-01-15T10_00_00_00_00"
    assert result["html"] == str(run_dir / "report.html") and Path(result["html"]).is_file()
    assert sorted(result["charts"]) == ["error_ratio", "latency", "slo_compliance", "timeline", "traffic_share"]
    assert result["outcome"] == "rolled_back" and result["chart_errors"] == {}
    record = json.loads((run_dir / "record.json").read_text())
    assert record["rollback"]["step"] == "25 %" and record["series"]
    json.dumps(result)  # XCom-serialisable


def test_the_report_shows_the_security_verdict_of_a_judge_that_halted(monkeypatch, tmp_path):
    """A halting judge fails its task (no return value): the report reads its `security` XCom."""
    facts = [f if f.task_id != "stage_01_deployment_readiness.validate_plan" else
             type(f)(f.task_id, f.state, FULL_PLAN) for f in rolled_back_facts()]
    security = {"verdict": "halt", "reason": "Halt before traffic: high auth-unauthenticated-access on green at GET /api/admin/users",
                "blocking": [{"id": "auth-unauthenticated-access", "severity": "high", "color": "green",
                              "where": "GET /api/admin/users", "evidence": "HTTP 200 with no token"}],
                "worse_than_blue": [], "findings": []}
    ti = FakeTI(facts, {("stage_07_security_audit.judge", "security"): security})
    context = {"ti": ti, "dag_run": SimpleNamespace(start_date=datetime.fromtimestamp(time.time() - 600, tz=timezone.utc)),
               "dag": SimpleNamespace(tasks=tasks_of(facts))}
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: context)
    monkeypatch.setattr("cutover_kit.hooks.prometheus.PrometheusHook", lambda conn_id: RangeSource())
    result = post_launch.write_post_launch_report(report_dir=str(tmp_path))
    page = Path(result["html"]).read_text()
    assert "auth-unauthenticated-access" in page and "GET /api/admin/users" in page
