"""DAG integrity (after the Astro project template): every DAG file imports without errors or
connections, has tags and retries, no cycles, and parses quickly (nothing heavy at parse time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
HEAVY_MODULES = ("great_expectations", "kubernetes", "pandas", "locust", "psycopg2", "redis", "openfeature", "UnleashClient", "grpc")


# Which DAGs each file must define. A new DAG file or DAG is added here on purpose.
DAGS_BY_FILE = {
    "cutover.py": ("cutover",),
    "emergency_rollback.py": ("emergency_rollback",),
    "gate_watchdog.py": ("gate_watchdog",),
    "smoke.py": ("smoke",),
}
ALL_DAGS = [(file, dag_id) for file, dag_ids in DAGS_BY_FILE.items() for dag_id in dag_ids]

# Tasks that must NOT be retried, and why. Every other task keeps the DAG's retries (>= 2): a
# retry of these could re-judge a real failure as healthy, or repeat a decision already taken.
NO_RETRY_TASKS = {
    "cutover": {
        # Input validation: a refused plan or a missing Connection does not heal by waiting.
        "stage_01_deployment_readiness.validate_plan",
        "stage_01_deployment_readiness.resolve_connections",
        "stage_02_database_preparation.check_schema_version",
        # The drill measures one rollback; a retry would hide a slow or broken one.
        "stage_08_rollback_procedures.rollback_drill",
        # The load test judges green's capacity: a retry could re-judge a real shortfall as healthy.
        "stage_06_load_testing.run_load_test",
        # The security audit judges green too: a scanner re-run could pass by luck (a timeout, a
        # fuzzer's other inputs); a listed scanner that failed halts, it is not retried into a pass.
        "stage_07_security_audit.http_checks",
        *(f"stage_07_security_audit.scan_{name}" for name in ("schemathesis", "wapiti", "sqlmap", "bandit", "npm_audit")),
        "stage_07_security_audit.judge",
        # Gates and smoke checks judge green: a retry could re-judge a real breach as healthy.
        *(f"stage_10_traffic_migration.step_{p}.{t}" for p in (5, 25, 50) for t in ("slo_gate", "stage_11_smoke_checks")),
        "stage_13_full_cutover.step_100.slo_gate",
        "stage_13_full_cutover.step_100.stage_11_smoke_checks",
        "stage_13_full_cutover.standby_watch",
        # Branches and records of a decision: taken once, from what the judged task left in XCom.
        *(f"stage_10_traffic_migration.step_{p}.decide" for p in (5, 25, 50)),
        "stage_13_full_cutover.step_100.decide",
        "stage_13_full_cutover.decide_standby",
        "decide_after_validation",
        "decide_after_load_test",
        "decide_after_security_audit",
        *(f"rollback.halt_at_{step}" for step in (5, 25, 50, 100, "standby", "load_testing", "security_audit",
                                                  "50_approval", "100_approval")),
        # A go/no-go approval is asked once; a retry would ask again after an answer (or a halt) was recorded.
        "stage_10_traffic_migration.step_50.approve", "stage_13_full_cutover.step_100.approve",
        "stage_10_traffic_migration.step_50.decide_approval", "stage_13_full_cutover.step_100.decide_approval",
        "database_rollback.halt_at_database",
        "cutover_verdict",
    },
    # The report only reads what the other tasks did; retrying it cannot change the outcome.
    "emergency_rollback": {"report"},
    "smoke": set(),
    # The watchdog re-reads every witness on a retry: a retry decides afresh, it never repeats a decision.
    "gate_watchdog": set(),
}


def load_dag_file(dag_file: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(dag_file), include_examples=False)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO_ROOT / "dags"), include_examples=False)


def test_every_dag_file_is_listed():
    assert sorted(p.name for p in DAG_FILES) == sorted(DAGS_BY_FILE), "add the new DAG file to DAGS_BY_FILE"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_each_dag_file_imports_and_defines_its_dags(dag_file):
    """One DagBag per file, so an import error names exactly one file."""
    bag = load_dag_file(dag_file)
    assert bag.import_errors == {}, f"{dag_file.name}: {bag.import_errors}"
    assert sorted(bag.dags) == sorted(DAGS_BY_FILE.get(dag_file.name, ())), dag_file.name


@pytest.mark.parametrize("dag_file, dag_id", ALL_DAGS, ids=[f"{f}:{d}" for f, d in ALL_DAGS])
def test_each_dag_has_tags_retries_and_no_cycles(dagbag, dag_file, dag_id):
    dag = dagbag.dags[dag_id]
    assert Path(dag.fileloc).name == dag_file
    assert dag.tags, f"{dag_id} has no tags"
    assert dag.default_args.get("retries", 0) >= 2, f"{dag_id} default retries < 2"
    dag.topological_sort()  # raises on a cycle


@pytest.mark.parametrize("dag_file, dag_id", ALL_DAGS, ids=[f"{f}:{d}" for f, d in ALL_DAGS])
def test_no_retry_tasks_are_exactly_the_allow_list(dagbag, dag_file, dag_id):
    dag = dagbag.dags[dag_id]
    without_retries = {task.task_id for task in dag.tasks if task.retries == 0}
    assert without_retries == NO_RETRY_TASKS[dag_id], (
        f"{dag_file}: tasks without retries differ from the allow-list: "
        f"unlisted {sorted(without_retries - NO_RETRY_TASKS[dag_id])}, "
        f"listed but retried {sorted(NO_RETRY_TASKS[dag_id] - without_retries)}")


def test_cutover_shape(dagbag):
    dag = dagbag.dags["cutover"]
    assert dag.max_active_runs == 1
    groups = {task_id.split(".")[0] for task_id in dag.task_ids}
    assert {
        "stage_01_deployment_readiness",
        "stage_02_database_preparation",
        "decide_after_validation",
        "stage_03_feature_flags",
        "database_rollback",
        "verify_data_integrity",
        "stage_04_monitoring",
        "stage_05_health_checks",
        "stage_06_load_testing",
        "decide_after_load_test",
        "stage_07_security_audit",
        "decide_after_security_audit",
        "stage_08_rollback_procedures",
        "stage_09_blue_green_setup",
        "stage_10_traffic_migration",
        "stage_12_blue_monitoring",
        "stage_13_full_cutover",
        "rollback",
        "cutover_verdict",
        "stage_15_post_launch",
    } == groups
    # Stages not built yet are absent, not faked.
    assert not any(task_id.startswith("stage_14") for task_id in dag.task_ids)
    # Gates must never be retried: a retry could re-judge a real breach as healthy.
    gates = [t for t in dag.tasks if t.task_id.endswith(("slo_gate", "standby_watch"))]
    assert len(gates) == 5 and all(t.retries == 0 for t in gates)


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_no_heavy_imports_at_parse_time(dag_file):
    """Parse in a fresh interpreter (Airflow itself imported first, not counted): no heavy module
    may load. The parse time itself is a benchmark figure (`make benchmark`, BENCHMARKS.md), not a
    test: on a shared 2-core machine a timed assertion fails on load, not on code."""
    probe = f"""
import sys, time, importlib.util
import airflow.sdk, airflow.sdk.exceptions
before = set(sys.modules)
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", {str(dag_file)!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(time.perf_counter() - start)
print(",".join(sorted(m.split(".")[0] for m in set(sys.modules) - before)))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    seconds_line, modules_line = out.stdout.strip().splitlines()[-2:]
    seconds, modules = float(seconds_line), set(modules_line.split(","))
    assert not modules & set(HEAVY_MODULES), (
        f"{dag_file.name} imports {modules & set(HEAVY_MODULES)} at parse time (parsed in {seconds:.2f} s)")


def test_invalid_params_are_refused_naming_the_field(dagbag):
    from airflow.sdk.definitions.param import ParamsDict

    dag = dagbag.dags["cutover"]
    good = ParamsDict(dag.params)
    good.validate()  # defaults are valid
    for field, bad in (("bake_seconds", -5), ("plan", "no-such-plan"), ("slo_max_error_ratio", "high"), ("flag_backend", "flagsmith")):
        params = ParamsDict(dag.params)
        with pytest.raises(Exception, match=field):
            params[field] = bad
            params.validate()


def test_gates_depend_only_on_their_own_step(dagbag):
    """No data edge may bypass the step chain: a failure upstream must reach a gate through its own
    step, or every step's branch wakes up (found under a real scheduler)."""
    dag = dagbag.dags["cutover"]
    for task in dag.tasks:
        if task.task_id.endswith(".slo_gate"):
            step = task.task_id.rsplit(".", 1)[0]
            assert all(up.startswith(step + ".") for up in task.upstream_task_ids), (task.task_id, task.upstream_task_ids)


def test_flags_move_before_traffic_and_roll_back_first(dagbag):
    """Stage 3 sits between the database decision and stage 5; each step sets its flags before its
    weights; the rollback group flips flags to Rails before it moves traffic."""
    dag = dagbag.dags["cutover"]
    rails_default = dag.get_task("stage_03_feature_flags.flags_at_rails_default")
    assert rails_default.upstream_task_ids == {"decide_after_validation"}
    assert {t.split(".")[0] for t in rails_default.downstream_task_ids} == {"stage_04_monitoring"}
    steps = [t.task_id.rsplit(".", 1)[0] for t in dag.tasks if t.task_id.endswith(".set_weights")]
    assert len(steps) == 4
    for step in steps:
        assert dag.get_task(f"{step}.set_weights").upstream_task_ids == {f"{step}.set_flags"}
    flags_back = dag.get_task("rollback.flags_to_rails")
    assert dag.get_task("rollback.route_all_to_blue").upstream_task_ids == {"rollback.flags_to_rails"}
    assert all(upstream.startswith("rollback.halt_at_") for upstream in flags_back.upstream_task_ids)
    assert len(flags_back.upstream_task_ids) == 9  # 4 steps, standby, stages 6 and 7, 2 approvals
    # The traffic level runs after the flag level succeeded or failed, but not when nothing halted.
    assert dag.get_task("rollback.route_all_to_blue").trigger_rule == "none_skipped"
    # A branch proceeds to the next step's flags, never straight to its weights.
    assert dag.get_task("stage_10_traffic_migration.step_5.decide").downstream_task_ids == {
        "stage_10_traffic_migration.step_25.set_flags", "rollback.halt_at_5"}
    assert "stage_01_deployment_readiness.check_flag_store" in dag.task_ids


def test_monitoring_checks_run_between_flags_and_health_checks_and_gate_everything_after(dagbag):
    """Stage 4's checks run side by side after stage 3; every stage-5 task waits for all of them
    with the default all_success, so a failed check leaves stage 5 upstream_failed and no traffic
    moves (the path of a failed health check). Every gate consults Alertmanager."""
    dag = dagbag.dags["cutover"]
    checks = {f"stage_04_monitoring.{name}" for name in ("check_rules_loaded", "check_alert_routing", "check_dashboard_queries", "check_json_logs", "check_error_reporting")}
    assert {t for t in dag.task_ids if t.startswith("stage_04_monitoring.")} == checks
    for check in checks:
        task = dag.get_task(check)
        assert task.upstream_task_ids == {"stage_03_feature_flags.flags_at_rails_default"}
        assert task.retries == 2 and task.python_callable.__module__ == "cutover_kit.stages.monitoring"
    for health in (t for t in dag.tasks if t.task_id.startswith("stage_05_health_checks.")):
        assert health.upstream_task_ids == checks and health.trigger_rule == "all_success", health.task_id
    gates = [t for t in dag.tasks if t.task_id.endswith(("slo_gate", "standby_watch"))]
    assert {gate.alertmanager_conn_id for gate in gates} == {"alertmanager_default"}


def test_load_testing_gates_traffic_before_any_moves(dagbag):
    """Stage 6 runs after the health checks and before stage 7; its branch goes on to stage 7's
    checks or to its halt and the rollback path (a stage 6 halt skips stage 7); its clean-up runs
    whatever happened, after stage 7 (which audits the same instances)."""
    dag = dagbag.dags["cutover"]
    start = dag.get_task("stage_06_load_testing.start_stage_instances")
    assert {t.split(".")[0] for t in start.upstream_task_ids} == {"stage_05_health_checks"}
    stop = dag.get_task("stage_06_load_testing.stop_stage_instances")
    assert stop.trigger_rule == "all_done"
    assert stop.upstream_task_ids == {"stage_06_load_testing.run_load_test", "stage_07_security_audit.judge"}
    decide = dag.get_task("decide_after_load_test")
    assert decide.upstream_task_ids == {"stage_06_load_testing.run_load_test"}
    assert decide.trigger_rule == "none_skipped"
    checks = {"stage_07_security_audit.http_checks",
              *(f"stage_07_security_audit.scan_{name}" for name in ("schemathesis", "wapiti", "sqlmap", "bandit", "npm_audit"))}
    assert decide.downstream_task_ids == checks | {"rollback.halt_at_load_testing"}
    assert dag.get_task("rollback.halt_at_load_testing").downstream_task_ids == {"rollback.flags_to_rails"}


def test_security_audit_gates_traffic_after_the_load_test(dagbag):
    """Stage 7's checks run side by side after stage 6's pass, the judge after all of them
    (ALL_DONE: a failed scanner is a reason the judge gives), then the branch: the drill or the
    halt; the drill waits for it."""
    dag = dagbag.dags["cutover"]
    judge = dag.get_task("stage_07_security_audit.judge")
    assert judge.trigger_rule == "all_done"
    assert {t.split(".")[-1] for t in judge.upstream_task_ids} == {
        "http_checks", "scan_schemathesis", "scan_wapiti", "scan_sqlmap", "scan_bandit", "scan_npm_audit"}
    for check in judge.upstream_task_ids:
        assert dag.get_task(check).upstream_task_ids == {"decide_after_load_test"}
    decide = dag.get_task("decide_after_security_audit")
    assert decide.trigger_rule == "none_skipped"
    assert decide.upstream_task_ids == {"stage_07_security_audit.judge", "stage_06_load_testing.stop_stage_instances"}
    assert decide.downstream_task_ids == {"stage_08_rollback_procedures.rollback_drill", "rollback.halt_at_security_audit"}
    drill_upstream = dag.get_task("stage_08_rollback_procedures.rollback_drill").upstream_task_ids
    assert "decide_after_security_audit" in drill_upstream
    assert not any(t.startswith(("stage_05", "stage_06", "stage_07", "decide_after_load")) for t in drill_upstream)
    assert dag.get_task("rollback.halt_at_security_audit").downstream_task_ids == {"rollback.flags_to_rails"}
    assert "rollback.halt_at_security_audit" in dag.get_task("cutover_verdict").op_args[1]


def test_emergency_smoke_rolls_flags_back_in_the_params_store(dagbag):
    """The emergency DAG has no plan: its smoke task gets the flag_backend param, so a smoke
    failure under Unleash does not write the flagd file the apps do not read."""
    smoke = dagbag.dags["emergency_rollback"].get_task("smoke_checks_on_blue")
    assert smoke.op_kwargs["flag_backend"] == "{{ params.flag_backend or '' }}"
    assert "flag_backend" in dagbag.dags["emergency_rollback"].params


@pytest.mark.parametrize("dag_id", ["emergency_rollback", "smoke", "gate_watchdog"])
def test_red_button_and_watchdog_are_active_from_their_first_parse(dagbag, dag_id):
    """Measured on a fresh `make airflow`: emergency_rollback started paused and a triggered run sat
    queued. Both must be unpaused at creation; the cutover itself is left to the deployment."""
    assert dagbag.dags[dag_id].is_paused_upon_creation is False


def test_cutover_is_not_forced_active(dagbag):
    assert dagbag.dags["cutover"].is_paused_upon_creation in (None, True)


def test_gate_watchdog_runs_every_minute_one_run_at_a_time_without_catchup(dagbag):
    """A dead-man's switch that lags by its schedule: one minute at most, never a backlog of runs
    replaying old minutes (catchup), never two runs rolling back at once."""
    dag = dagbag.dags["gate_watchdog"]
    assert dag.timetable.expression == "* * * * *"
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert [task.task_id for task in dag.tasks] == ["watch_gates"]
    assert dag.get_task("watch_gates").python_callable.__module__ == "cutover_kit.stages.gate_watchdog"


def test_the_report_follows_the_verdict_on_every_path_and_never_decides_the_run(dagbag):
    from typing import NamedTuple

    from airflow.models.dagrun import DagRun

    class TI(NamedTuple):
        task_id: str
        state: str

    dag = dagbag.dags["cutover"]
    report = dag.get_task("stage_15_post_launch.write_report")
    # A teardown without setups: all-done (any upstream state), after the verdict.
    assert report.is_teardown and not report.on_failure_fail_dagrun
    assert report.trigger_rule == "all_done_setup_success" and not report.upstream_task_ids - {"cutover_verdict"}
    # Airflow's own rule for the tasks whose states decide the run: the verdict stays one of them
    # (a failed verdict still fails the run), the report is not (its failure never does).
    deciding = {ti.task_id for ti in DagRun._tis_for_dagrun_state(None, dag=dag, tis=[TI(t, "success") for t in dag.task_ids])}
    assert "cutover_verdict" in deciding and report.task_id not in deciding
