"""Stage 6, load testing (task group ``stage_06_load_testing``): before any traffic moves, a step
load on each color's *stage instance* finds its knee, and green must meet the plan's capacity
plan (cutover_kit.load.capacity) or the run halts with green at 0 %.

Tasks, in order:
* ``start_stage_instances``: when a color's Connection (``app_blue_loadtest`` /
  ``app_green_loadtest``, see cutover_kit.load.instances) says how to start its instance, stage 2's
  verified backup is restored in full into a copy (:data:`STAGE_DB`), brought to the live schema
  (expand + backfill, exactly as stage 2 did to the live database), and each instance is started
  on it: blue first (the stage green forwards Rails-flagged requests to the stage blue). Then each
  instance must answer its ready path. The live instances and the live database are never touched.
* ``run_load_test``: Locust (a subprocess) against blue, then green: the step load, then (plan
  ``load_test.stress``) a stress step past the knee and a light recovery load in the same run;
  knee per color, how it failed under stress and whether it recovered (cutover_kit.load.stress),
  the judge, bottleneck hints (CPU from Prometheus, the color's database role in pg_stat_activity
  and pg_stat_statements; advisory, "unavailable: <why>" when a source cannot be read), one
  verdict line and one line per hint, a PNG chart, Locust's CSV/HTML/JSON under the run's
  artifact directory, the ``load_test`` summary in XCom. A halt verdict or a run that could not
  measure fails the task (never a pass by default).
* ``stop_stage_instances`` (ALL_DONE): stop what this stage started and drop the copy, whatever
  happened; skipped when ``start_stage_instances`` never ran (an earlier stage failed).
Then ``decide_after_load_test`` (a branch, in verdict.py; the pure rule is
outcome.choose_after_load_test): on to stage 8, or ``rollback.halt_at_load_testing`` and the usual
rollback path (flags -> Rails, 0 % green, verified), which here only re-asserts the
  state the run started from: no user request ever reached green.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from cutover_kit import connections
from cutover_kit.paths import REPO_ROOT
from cutover_kit.stages._shared import connection_dsn, plan_of_run

log = logging.getLogger(__name__)

STAGE_DB = "cutover_stage_copy"
ARTIFACT_ENV = "CUTOVER_LOAD_ARTIFACT_DIR"
DEFAULT_ARTIFACT_ROOT = REPO_ROOT / ".artifacts" / "load"
SUMMARY_KEY = "load_test"
FAILURE_KEY = "load_test_failure"
COLORS = ("blue", "green")
# Which implementation each color must run itself on a direct request (X-Cutover-Serve).
OWN_CODE = {"blue": "rails", "green": "typescript"}
NEVER_STARTED = (None, "upstream_failed", "skipped", "removed")
COPY_BACKFILL_BATCH = 100_000


# --------------------------------------------------------------------------------------- pure


def load_settings(load_test: Mapping[str, Any] | None) -> dict[str, Any]:
    """The plan's `load_test` section, or a clear refusal: stage 6 never passes without one."""
    if not load_test:
        raise ValueError("the plan has no load_test section (users_per_step, step_seconds, max_requests, "
                         "max_p95_ms, max_error_ratio, capacity): stage 6 cannot judge green's capacity")
    return dict(load_test)


def profile_for(load_test: Mapping[str, Any], color: str, target: str, user_ids: int, order_ids: int):
    """The Locust profile of one color: the plan's steps (spawning a step's users within one
    second), then its stress and recovery phase when the plan has one."""
    from cutover_kit.load.profile import LoadProfile, Step, StressPhase

    steps = tuple(Step(users, float(users)) for users in load_test["users_per_step"])
    stress = load_test.get("stress")
    phase = (StressPhase(users=stress["users"], seconds=stress["seconds"],
                         recovery_users=stress.get("recovery_users", load_test["users_per_step"][0]),
                         recovery_seconds=stress["recovery_seconds"]) if stress else None)
    return LoadProfile(target=target, steps=steps, step_seconds=load_test["step_seconds"],
                       max_requests=load_test["max_requests"], wait_seconds=load_test.get("wait_seconds", 0.05),
                       user_ids=max(1, user_ids), order_ids=max(1, order_ids), serve=OWN_CODE[color], stress=phase)


def stress_blocks_of(runs: Mapping[str, Any], knees: Mapping[str, Any], slo, max_requests: int) -> dict[str, dict[str, Any]]:
    """Per color: how the stress step failed and whether the recovery came back (stress_block);
    a run that reached the request cap before its recovery has it "not measured"."""
    from cutover_kit.load.stress import classify_failure, judge_recovery, stress_block

    def capped(run) -> int | None:
        return max_requests if (run.totals or {}).get("requests", 0) >= max_requests else None

    return {color: stress_block(classify_failure(runs[color].stress, slo, knees[color]),
                                judge_recovery(runs[color].recovery, slo, capped_at=capped(runs[color])))
            for color in COLORS}


def knee_window(run, knee, step_seconds: float) -> tuple[float, float] | None:
    """Epoch window (start, end] of the knee step, from the history's first row."""
    if knee.step_index is None or run.start_epoch is None:
        return None
    return run.start_epoch + knee.step_index * step_seconds, run.start_epoch + (knee.step_index + 1) * step_seconds


def cpu_query(selector: str, rate_window_seconds: int = 3) -> str:
    """Cores the color's app process used (process_cpu_seconds_total, exported by both apps)."""
    return f"sum(rate(process_cpu_seconds_total{{{selector}}}[{rate_window_seconds}s]))"


def cpu_samples(matrix: list[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """A Prometheus range answer of one series -> [(epoch, cores)]; NaN samples dropped."""
    samples = []
    for series in matrix[:1]:
        for at, value in series.get("values", []):
            cores = float(value)
            if cores == cores:  # not NaN
                samples.append((float(at), cores))
    return samples


def capacity_plan_of(load_test: Mapping[str, Any]):
    from cutover_kit.load.capacity import CapacityPlan

    return CapacityPlan(**load_test["capacity"])


def seeded_ids(backup_record: Mapping[str, Any] | None) -> tuple[int, int]:
    """(users, orders) id ranges the copy holds, from the backup's dump-time fingerprints."""
    fingerprints = (backup_record or {}).get("fingerprints") or {}

    def top(table: str) -> int:
        entry = fingerprints.get(table) or {}
        return int(entry.get("max_id") or entry.get("count") or 1)

    return top("users"), top("orders")


def verdict_line(summary: Mapping[str, Any]) -> str:
    """One line: the verdict, its reason, each color's knee and p95 at the planned peak."""
    figures = "; ".join(
        f"{color} knee {summary[color]['knee_rps']:g} rps, p95 at peak {summary[color]['p95_at_peak_ms']} ms"
        for color in COLORS)
    return f"Load test {summary['verdict'].upper()}: {summary['reason']} ({figures})"


def artifact_dir_for(run_id: str | None, base: str | Path | None = None) -> Path:
    root = Path(base or os.environ.get(ARTIFACT_ENV) or DEFAULT_ARTIFACT_ROOT)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id or "manual").strip("._") or "manual"
    return root / safe


# --------------------------------------------------------------------------------------- tasks


def _instances():
    from cutover_kit.hooks.stage_instances import StageInstanceHook
    from cutover_kit.load.instances import StageInstanceError

    try:
        return {color: StageInstanceHook(color).get_conn() for color in COLORS}
    except StageInstanceError as error:
        raise AirflowFailException(f"Stage instances misdescribed: {error}") from error


def make_stage_database(backup_record: Mapping[str, Any], conn_id: str, database: str) -> dict[str, Any]:
    """The verified backup restored in full into `database`, then expand + backfill as on the live one."""
    from cutover_kit.db.errors import BackupError
    from cutover_kit.db.migrations import backfill, current_version, migrate_up
    from cutover_kit.db.restore import restore_full_copy
    from cutover_kit.db.schema_versions import BASE_VERSION, EXPAND_VERSION

    import psycopg2

    started = time.monotonic()
    try:
        copy_dsn = restore_full_copy(connection_dsn(conn_id), backup_record, database)
    except BackupError as error:
        raise AirflowFailException(f"Stage database not made from backup {backup_record.get('path')}: {error}") from error
    with psycopg2.connect(copy_dsn) as conn:
        version = current_version(conn)
    conn.close()
    if version == BASE_VERSION:
        migrate_up(copy_dsn, EXPAND_VERSION, expected_current=BASE_VERSION)
    # Nobody else uses the copy: large batches (stage 2's small ones protect live writers), then
    # fresh planner statistics; no VACUUM (the load reads by key, the copy lives for minutes).
    filled = backfill(copy_dsn, batch_size=COPY_BACKFILL_BATCH)
    if not filled.complete:
        raise AirflowException(f"Stage database {database}: backfill left {filled.remaining} rows; retrying")
    with psycopg2.connect(copy_dsn) as conn, conn.cursor() as cur:
        cur.execute("ANALYZE")
    conn.close()
    return {"database": database, "from_backup": backup_record.get("path"), "restored_version": version,
            "seconds": round(time.monotonic() - started, 2)}


def start_stage_instances(backup_task_id: str, conn_id: str = connections.POSTGRES,
                          database: str = STAGE_DB) -> dict[str, Any]:
    """`backup_task_id`: stage 2's verified backup, pulled by id (a data edge would bypass stage 5)."""
    from airflow.sdk import get_current_context

    from cutover_kit.load.instances import StageInstanceError, start_instance

    instances = _instances()
    copy = None
    if any(instance.started_by_stage for instance in instances.values()):
        backup_record = get_current_context()["ti"].xcom_pull(task_ids=backup_task_id)
        if not backup_record:
            raise AirflowFailException(f"No verified backup from {backup_task_id}: the stage database cannot be made")
        copy = make_stage_database(backup_record, conn_id, database)
    started = {}
    for color in COLORS:  # blue first: the stage green forwards Rails-flagged requests to it
        try:
            started[color] = start_instance(instances[color], copy["database"] if copy else None)
        except StageInstanceError as error:
            raise AirflowFailException(f"Stage instance not available: {error}") from error
    reason = (f"Stage instances ready: " + "; ".join(f"{instances[c].describe()} in "
                                                    f"{(started[c]['start_seconds'] or 0) + started[c]['ready_seconds']:.1f} s"
                                                    for c in COLORS)
              + (f"; database copy {copy['database']} from the verified backup in {copy['seconds']:.1f} s" if copy else ""))
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "instances": started, "database_copy": copy}


def run_load_test(plan_task_id: str, start_task_id: str, backup_task_id: str) -> dict[str, Any]:
    from airflow.sdk import get_current_context

    from cutover_kit.load.capacity import PASS, load_test_summary
    from cutover_kit.load.chart import write_chart
    from cutover_kit.load.knee import LoadSLO, find_knee
    from cutover_kit.load.profile import ProfileError
    from cutover_kit.load.runner import LoadRunError, run_locust

    context = get_current_context()
    ti = context["ti"]
    try:
        settings = load_settings(plan_of_run(plan_task_id).load_test)
        started = ti.xcom_pull(task_ids=start_task_id) or {}
        urls = {color: (started.get("instances") or {}).get(color, {}).get("url") for color in COLORS}
        if not all(urls.values()):
            raise ValueError(f"no stage instance URL from {start_task_id}: {urls}")
        user_ids, order_ids = seeded_ids(ti.xcom_pull(task_ids=backup_task_id))
        out_dir = artifact_dir_for(context["run_id"])
        slo = LoadSLO(max_p95_ms=settings["max_p95_ms"], max_error_ratio=settings["max_error_ratio"])
        capacity = capacity_plan_of(settings)
        runs, knees, seconds, samplers = {}, {}, {}, {}
        database = (started.get("database_copy") or {}).get("database")
        instances = _instances()
        for color in COLORS:
            profile = profile_for(settings, color, urls[color], user_ids, order_ids)
            with connection_sampler_for(instances[color], database) as samplers[color]:
                runs[color] = run_locust(profile, color, out_dir)
            knees[color] = find_knee(runs[color].steps, slo)
            seconds[color] = runs[color].seconds
            log.info("Load %s: %s", color, knees[color].reason)
        stress = stress_blocks_of(runs, knees, slo, settings["max_requests"]) if settings.get("stress") else None
        summary = load_test_summary({c: runs[c].steps for c in COLORS}, knees, capacity, stress)
        chart = write_chart({c: runs[c].steps for c in COLORS}, knees, out_dir / "load-test.png", settings["max_p95_ms"],
                            {c: runs[c].stress for c in COLORS})
    except (ValueError, ProfileError, LoadRunError) as error:
        reason = f"load test could not measure: {error}"
        ti.xcom_push(key=FAILURE_KEY, value={"reason": reason})
        raise AirflowFailException(f"Load test FAIL: {reason}") from error
    for color in COLORS:
        if stress is not None:
            log.info("Stress %s: %s; %s", color, stress[color]["stress"]["description"], stress[color]["recovery"]["description"])
        summary[color]["bottlenecks"] = bottleneck_hints_for(color, runs[color], knees[color], instances[color], database,
                                                     samplers[color], settings["step_seconds"])
        for hint in summary[color]["bottlenecks"]["hints"]:
            log.info("Bottleneck hint: %s", hint)
    if summary.get("stress_finding"):
        log.warning("Stress finding: %s", summary["stress_finding"])
    summary["seconds"] = seconds
    summary["requests"] = {c: runs[c].totals.get("requests") for c in COLORS}
    summary["artifacts"] = {"chart": str(chart), **{c: runs[c].artifacts for c in COLORS}}
    for color in COLORS:  # the per-step evidence stays in the artifacts; XCom keeps the figures
        summary[color].pop("steps", None)
    line = verdict_line(summary)
    ti.xcom_push(key=SUMMARY_KEY, value=summary)
    if summary["verdict"] != PASS:
        raise AirflowFailException(line)
    log.info(line)
    # The task's verdict and line come last: the summary's own lower-case verdict must not win.
    return {**summary, "verdict": "PASS", "reason": line}


class _NoSampler:
    """Stands in for a ConnectionSampler when there is nothing to sample; says why."""

    def __init__(self, why: str) -> None:
        self.error = why
        self.samples: list = []

    def __enter__(self):
        return self

    def __exit__(self, *_exc: object) -> None:
        return None


def connection_sampler_for(instance, database: str | None):
    from cutover_kit.load.pg_stats import ConnectionSampler

    if not instance.database_role:
        return _NoSampler(f"the Connection of the {instance.color} stage instance names no database_role")
    if not database:
        return _NoSampler("a pre-provisioned instance: its database is not the stage's copy")
    try:
        dsn = connection_dsn(connections.POSTGRES)
    except Exception as error:  # noqa: BLE001 - advisory: a missing Connection makes the hint unavailable, not the stage fail
        return _NoSampler(f"Connection {connections.POSTGRES}: {error}")
    return ConnectionSampler(dsn, instance.database_role, database)


def bottleneck_hints_for(color: str, run, knee, instance, database: str | None, sampler, step_seconds: float) -> dict[str, Any]:
    """The advisory hints of one color: each source read on its own, a failure recorded as
    "unavailable: <why>" (never a failed stage: the verdict does not depend on hints)."""
    from cutover_kit.hooks.prometheus import PrometheusError, PrometheusHook
    from cutover_kit.load.bottlenecks import bottleneck_block, connection_figures, cpu_figures, generator_figures, unavailable
    from cutover_kit.load.pg_stats import PgStatsUnavailable, server_limits, slowest_statements

    try:
        if run.started_at is None or run.ended_at is None:
            raise ValueError("the run recorded no time window")
        matrix = PrometheusHook().query_range(cpu_query(instance.metrics_selector), run.started_at, run.ended_at, 1)
        cpu = cpu_figures(cpu_samples(matrix), knee_window(run, knee, step_seconds))
        if "unavailable" in cpu:
            cpu = unavailable(f"Prometheus has no process_cpu_seconds_total for {{{instance.metrics_selector}}} in the run's"
                              " window (is it scraping the stage instance?)")
    except (PrometheusError, ValueError) as error:
        cpu = unavailable(str(error))
    except Exception as error:  # noqa: BLE001 - advisory: e.g. no Prometheus Connection; recorded, never a failed stage
        cpu = unavailable(f"{type(error).__name__}: {error}")
    role = instance.database_role
    if sampler.error or not role or not database:
        conns = unavailable(sampler.error or "no database role or copy")
        statements: Any = unavailable(sampler.error or "no database role or copy")
    else:
        try:
            conns = connection_figures(sampler.samples, *server_limits(connection_dsn(connections.POSTGRES), role))
        except PgStatsUnavailable as error:
            conns = unavailable(str(error))
        try:
            statements = slowest_statements(connection_dsn(connections.POSTGRES), role, database)
        except PgStatsUnavailable as error:
            statements = unavailable(str(error))
    rates = [step.rate_rps for step in [*run.steps, *([run.stress] if run.stress else [])] if step.requests]
    generator = generator_figures(run.generator_cpu_seconds, (run.totals or {}).get("requests"), max(rates, default=None))
    return bottleneck_block(color, OWN_CODE[color], role, cpu, conns, statements, generator)


def stop_stage_instances(start_task_id: str, conn_id: str = connections.POSTGRES, database: str = STAGE_DB) -> dict[str, Any]:
    """Stop what this stage started and drop the copy, whatever happened (ALL_DONE)."""
    from airflow.sdk import get_current_context

    from cutover_kit.db.restore import drop_scratch
    from cutover_kit.load.instances import StageInstanceError, stop_instance

    ti = get_current_context()["ti"]
    state = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {}).get(start_task_id)
    if state in NEVER_STARTED:
        raise AirflowSkipException(f"Nothing to stop: {start_task_id} never ran in this run (state {state})")
    instances = _instances()
    problems, stopped = [], []
    for color in reversed(COLORS):  # green first: it forwards to the stage blue
        try:
            if stop_instance(instances[color]) is not None:
                stopped.append(color)
        except StageInstanceError as error:
            problems.append(str(error))
    if any(instance.started_by_stage for instance in instances.values()):
        drop_scratch(connection_dsn(conn_id), database)
    if problems:
        raise AirflowException("Stage instances not all stopped: " + "; ".join(problems))
    reason = (f"Stage instances stopped ({', '.join(stopped) or 'none started by the stage'})"
              + (f", database copy {database} dropped" if stopped else ""))
    log.info(reason)
    return {"verdict": "PASS", "reason": reason}
