"""Stage 15, post-launch (task group ``stage_15_post_launch``): ``write_report`` gathers what this
cutover run left behind, builds the run record (cutover_kit.report), renders the HTML report and
its PNG charts into a per-run directory, logs the path and returns ``{html, charts, ...}`` (XCom).

It runs at the end of every path, after ``cutover_verdict``, as the DAG's teardown: it waits for
everything (all done, whatever the states) and Airflow leaves teardowns out of the run's state, so
a failed verdict still fails the run and a report problem never fails it. Inside, a Prometheus that
does not answer or a chart that does not render becomes a note in the report, never an error.

Where the files go: ``<base>/<dag_id>/<run_id>/``, base = the ``report_dir`` argument, else
``$CUTOVER_REPORT_DIR`` (the rehearsal sets it beside its result file), else
``$AIRFLOW_HOME/reports``. Re-running the task overwrites the same files.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from cutover_kit import connections

log = logging.getLogger(__name__)

REPORT_DIR_ENV = "CUTOVER_REPORT_DIR"
# Tasks whose XComs the report reads besides return values (the trigger's event, stage 11's and
# stage 2's failure records), by the end of their task id.
SMOKE_SUFFIX = "stage_11_smoke_checks"
GX_SUFFIX = "validate_with_great_expectations"
NOT_RUN_STATES = (None, "skipped", "upstream_failed", "removed", "none")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "run"


def report_dir_for(dag_id: str, run_id: str, base: str | Path | None = None) -> Path:
    root = base or os.environ.get(REPORT_DIR_ENV)
    if not root:
        root = Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "reports"
    return Path(root) / _safe(dag_id) / _safe(run_id)


def gather_task_facts(ti: Any, tasks: list[Any]) -> list[Any]:
    """One TaskFacts per task of this run (this task excepted): its state and the XComs the
    report reads. Tasks that never ran have no XCom to ask for."""
    from cutover_kit.report.collect import TaskFacts
    from cutover_kit.sensors.slo_gate import GATE_RESULT_KEY, SLOGateOperator

    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    facts = []
    for task in tasks:
        if task.task_id == ti.task_id:
            continue
        state = states.get(task.task_id)
        state = str(getattr(state, "value", state)) if state is not None else None
        if state in NOT_RUN_STATES:
            facts.append(TaskFacts(task.task_id, state))
            continue
        pull = lambda key="return_value": ti.xcom_pull(task_ids=task.task_id, key=key)  # noqa: E731
        facts.append(TaskFacts(
            task.task_id, state, return_value=pull(),
            gate_result=pull(GATE_RESULT_KEY) if isinstance(task, SLOGateOperator) else None,
            smoke_result=pull("smoke_result") if task.task_id.endswith(SMOKE_SUFFIX) else None,
            validation_failure=pull("validation_failure") if task.task_id.endswith(GX_SUFFIX) else None,
        ))
    return facts


def gather_series(plan_dict: dict[str, Any] | None, start: float, end: float, source: Any) -> tuple[list[Any], str | None]:
    """The metric series over [start, end] from the plan's metric templates, and a note saying what
    is missing and why (None when every query answered). Never raises for Prometheus."""
    from cutover_kit.hooks.prometheus import PrometheusError
    from cutover_kit.plan import CutoverPlan, PlanError
    from cutover_kit.report.record import Series
    from cutover_kit.report.series import matrix_points, measure_series, range_queries, range_step_seconds

    if not plan_dict:
        return [], "no plan recorded (stage 1 did not validate one), so no metric templates to query"
    try:
        plan = CutoverPlan.from_dict(plan_dict)
    except PlanError as error:
        return [], f"the recorded plan does not load ({error}), so no metric templates to query"
    if end <= start:
        return [], f"the run's interval is empty (start {start:.0f} >= end {end:.0f}), so nothing to query"
    step = range_step_seconds(end - start)
    # Each point counts the window before it: never narrower than the step (no gaps between points).
    window = max(plan.window_seconds, step)
    answers, problems = {}, []
    for what, color, promql in range_queries(plan.metrics, window):
        try:
            answers[(what, color)] = matrix_points(source.query_range(promql, start, end, step), f"{color} {what}")
        except (PrometheusError, ValueError) as error:
            problems.append(f"{color} {what}: {error}")
    series = [Series(measure, color, points) for measure, color, points in measure_series(answers)]
    note = None
    if problems:
        note = f"{len(problems)} of {len(answers) + len(problems)} range queries failed; first: {problems[0]}"
    elif not series:
        note = f"Prometheus had no samples for this run's interval ({end - start:.0f} s)"
    return series, note


def write_post_launch_report(report_dir: str | None = None, prometheus_conn_id: str = connections.PROMETHEUS) -> dict[str, Any]:
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.prometheus import PrometheusHook
    from cutover_kit.report.collect import PLAN_TASK, build_run_record, stage_block
    from cutover_kit.report.render import write_report

    context = get_current_context()
    ti, dag_run = context["ti"], context["dag_run"]
    started_gathering = time.monotonic()
    facts = gather_task_facts(ti, list(context["dag"].tasks))
    plan = next((f.return_value for f in facts if f.task_id == PLAN_TASK and isinstance(f.return_value, dict)), None)
    end = time.time()
    start_date = getattr(dag_run, "start_date", None)
    start = start_date.timestamp() if start_date else end - 3600
    series, note = gather_series(plan, start, end, PrometheusHook(prometheus_conn_id))
    if note:
        log.warning("Report series: %s", note)
    record = build_run_record(
        dag_id=ti.dag_id, run_id=ti.run_id, started_at=start, ended_at=end, tasks=facts, series=series, series_note=note,
        # The summaries stages 6 and 7 push under their own keys: a halt fails the task, so its
        # return value is empty exactly when the block matters most.
        load_test=(ti.xcom_pull(task_ids="stage_06_load_testing.run_load_test", key="load_test")
                   or stage_block(facts, "stage_06_", ("blue", "green", "verdict", "reason"))),
        security=(ti.xcom_pull(task_ids="stage_07_security_audit.judge", key="security")
                  or stage_block(facts, "stage_07_", ("verdict", "reason", "blocking"))),
    )
    gathered = time.monotonic() - started_gathering
    started_rendering = time.monotonic()
    written = write_report(record, report_dir_for(ti.dag_id, ti.run_id, report_dir or None))
    rendered = time.monotonic() - started_rendering
    for name, why in written["chart_errors"].items():
        log.warning("Chart %s not rendered (the report says so): %s", name, why)
    log.info("Post-launch report (%s, %d charts, %d series) in %s: gathered in %.1f s, rendered in %.1f s",
             record.outcome or "no verdict", len(written["charts"]), len(series), written["html"], gathered, rendered)
    return {**written, "outcome": record.outcome, "gather_seconds": round(gathered, 3), "render_seconds": round(rendered, 3)}
