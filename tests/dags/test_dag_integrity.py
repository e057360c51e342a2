"""DAG integrity (after the Astro project template): every DAG file imports without errors or
connections, has tags and retries, no cycles, and parses quickly (nothing heavy at parse time)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
HEAVY_MODULES = ("great_expectations", "kubernetes", "pandas", "locust", "psycopg2", "redis", "openfeature", "UnleashClient", "grpc")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO_ROOT / "dags"), include_examples=False)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_each_dag_file_defines_a_dag(dagbag, dag_file):
    assert any(Path(dag.fileloc) == dag_file for dag in dagbag.dags.values())


def test_dags_have_tags_retries_and_no_cycles(dagbag):

    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.default_args.get("retries", 0) >= 2, f"{dag_id} default retries < 2"
        dag.topological_sort()  # raises on a cycle


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
        "stage_05_health_checks",
        "stage_08_rollback_procedures",
        "stage_09_blue_green_setup",
        "stage_10_traffic_migration",
        "stage_12_blue_monitoring",
        "stage_13_full_cutover",
        "rollback",
        "cutover_verdict",
    } == groups
    # Stages not built yet are absent, not faked.
    assert not any(task_id.startswith(("stage_04", "stage_06", "stage_07", "stage_14", "stage_15")) for task_id in dag.task_ids)
    # Gates must never be retried: a retry could re-judge a real breach as healthy.
    gates = [t for t in dag.tasks if t.task_id.endswith(("slo_gate", "standby_watch"))]
    assert len(gates) == 5 and all(t.retries == 0 for t in gates)


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_parse_time_and_no_heavy_imports(dag_file):
    """Parse in a fresh interpreter (Airflow itself imported first, not counted): < 0.5 s."""
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
    assert seconds < 0.5, f"{dag_file.name} parsed in {seconds:.2f} s"
    assert not modules & set(HEAVY_MODULES), f"{dag_file.name} imports {modules & set(HEAVY_MODULES)} at parse time"


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
    assert {t.split(".")[0] for t in rails_default.downstream_task_ids} == {"stage_05_health_checks"}
    steps = [t.task_id.rsplit(".", 1)[0] for t in dag.tasks if t.task_id.endswith(".set_weights")]
    assert len(steps) == 4
    for step in steps:
        assert dag.get_task(f"{step}.set_weights").upstream_task_ids == {f"{step}.set_flags"}
    flags_back = dag.get_task("rollback.flags_to_rails")
    assert dag.get_task("rollback.route_all_to_blue").upstream_task_ids == {"rollback.flags_to_rails"}
    assert all(upstream.startswith("rollback.halt_at_") for upstream in flags_back.upstream_task_ids)
    assert len(flags_back.upstream_task_ids) == 5
    # The traffic level runs after the flag level succeeded or failed, but not when nothing halted.
    assert dag.get_task("rollback.route_all_to_blue").trigger_rule == "none_skipped"
    # A branch proceeds to the next step's flags, never straight to its weights.
    assert dag.get_task("stage_10_traffic_migration.step_5.decide").downstream_task_ids == {
        "stage_10_traffic_migration.step_25.set_flags", "rollback.halt_at_5"}
    assert "stage_01_deployment_readiness.check_flag_store" in dag.task_ids


def test_emergency_smoke_rolls_flags_back_in_the_params_store(dagbag):
    """The emergency DAG has no plan: its smoke task gets the flag_backend param, so a smoke
    failure under Unleash does not write the flagd file the apps do not read."""
    smoke = dagbag.dags["emergency_rollback"].get_task("smoke_checks_on_blue")
    assert smoke.op_kwargs["flag_backend"] == "{{ params.flag_backend or '' }}"
    assert "flag_backend" in dagbag.dags["emergency_rollback"].params
