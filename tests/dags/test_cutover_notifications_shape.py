"""Where the cutover's notifications are wired: every stage group's first tasks announce its start,
its last tasks its end, its other tasks a failure; every SLO gate its decision; the rollback, the
database rollback and the verdict their outcome; the emergency DAG its latch and report; and the run
carries two Deadline Alerts (standby watch, whole run) from the plans' worst case."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def load(dag_file: str, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO_ROOT / "dags" / dag_file), include_examples=False)
    assert bag.import_errors == {}
    return bag.dags[dag_id]


@pytest.fixture(scope="module")
def cutover():
    return load("cutover.py", "cutover")


def notifiers(task, attribute, kind):
    callbacks = getattr(task, attribute) or []
    return [cb for cb in (callbacks if isinstance(callbacks, list) else [callbacks]) if isinstance(cb, kind)]


def test_every_stage_announces_start_end_and_failure(cutover):
    from cutover_kit.notifiers.cutover import StageNotifier, stage_groups
    from cutover_kit.sensors.slo_gate import SLOGateOperator

    groups = stage_groups(cutover)
    assert {"stage_01_deployment_readiness", "stage_02_database_preparation", "stage_05_health_checks",
            "stage_10_traffic_migration", "stage_13_full_cutover", "stage_15_post_launch"} <= set(groups)
    for stage, tasks in groups.items():
        ids = {task.task_id for task in tasks}
        for task in tasks:
            is_root, is_leaf = not task.upstream_task_ids & ids, not task.downstream_task_ids & ids
            starts = notifiers(task, "on_execute_callback", StageNotifier)
            if is_root:
                assert len(starts) == 1 and starts[0].stage == stage and starts[0].event == "start", task.task_id
                assert task.task_id in starts[0].roots
            else:
                assert starts == [], task.task_id
            ends = [cb for cb in notifiers(task, "on_success_callback", StageNotifier) if cb.event == "end"]
            assert len(ends) == (1 if is_leaf else 0), task.task_id
            failures = [cb for cb in notifiers(task, "on_failure_callback", StageNotifier) if cb.event == "failure"]
            assert len(failures) == (0 if isinstance(task, SLOGateOperator) else 1), task.task_id
            assert all(cb.conn_id == "cutover_notifications" for cb in [*ends, *failures])
    # The stage's own first and last tasks, in DAG order.
    stage_05 = [t.task_id for t in groups["stage_05_health_checks"]]
    [start] = notifiers(groups["stage_05_health_checks"][0], "on_execute_callback", StageNotifier)
    assert list(start.roots) == stage_05
    standby_stage = {t.task_id: t for t in groups["stage_13_full_cutover"]}
    [end] = notifiers(standby_stage["stage_13_full_cutover.promote"], "on_success_callback", StageNotifier)
    assert set(end.leaves) == {"stage_13_full_cutover.decide_standby", "stage_13_full_cutover.promote"}


def test_every_gate_reports_its_decision_either_way(cutover):
    from cutover_kit.notifiers.cutover import GateDecisionNotifier
    from cutover_kit.sensors.slo_gate import SLOGateOperator

    gates = [task for task in cutover.tasks if isinstance(task, SLOGateOperator)]
    assert "stage_13_full_cutover.standby_watch" in {gate.task_id for gate in gates} and len(gates) >= 4
    for gate in gates:
        [on_success] = notifiers(gate, "on_success_callback", GateDecisionNotifier)
        [on_failure] = notifiers(gate, "on_failure_callback", GateDecisionNotifier)
        assert (on_success.on_failure, on_failure.on_failure) == (False, True), gate.task_id


def test_rollbacks_and_verdict_report_success_and_failure(cutover):
    from cutover_kit.notifiers.cutover import DatabaseRollbackNotifier, RollbackNotifier, VerdictNotifier

    for task_id, kind in (("rollback.verify_blue_serving", RollbackNotifier),
                          ("database_rollback.down_migration_verified", DatabaseRollbackNotifier),
                          ("cutover_verdict", VerdictNotifier)):
        task = cutover.task_dict[task_id]
        [on_success], [on_failure] = notifiers(task, "on_success_callback", kind), notifiers(task, "on_failure_callback", kind)
        assert (on_success.on_failure, on_failure.on_failure) == (False, True), task_id
    [rollback] = notifiers(cutover.task_dict["rollback.verify_blue_serving"], "on_success_callback", RollbackNotifier)
    assert rollback.flags_task_id in cutover.task_dict and rollback.traffic_task_id in cutover.task_dict


def test_emergency_dag_reports_latch_and_report():
    from cutover_kit.notifiers.cutover import EmergencyStopNotifier

    dag = load("emergency_rollback.py", "emergency_rollback")
    for task_id, phase in (("latch_emergency_stop", "latch"), ("report", "report")):
        for attribute in ("on_success_callback", "on_failure_callback"):
            [notifier] = notifiers(dag.task_dict[task_id], attribute, EmergencyStopNotifier)
            assert notifier.phase == phase and notifier.on_failure == (attribute == "on_failure_callback")


def test_the_run_has_deadlines_for_the_standby_watch_and_the_whole_run(cutover):
    from airflow.sdk import DeadlineReference

    from cutover_kit.plan import list_plans, load_plan
    from cutover_kit.run_deadlines import longest_bounds

    standby_bound, run_bound = longest_bounds([load_plan(name) for name in list_plans()])
    standby, run = cutover.deadline
    assert [alert.callback.kwargs["watched"] for alert in (standby, run)] == ["standby_watch", "run"]
    assert all(alert.reference == DeadlineReference.DAGRUN_QUEUED_AT for alert in (standby, run))
    assert standby.interval == timedelta(seconds=standby_bound.standby_end_seconds)
    assert run.interval == timedelta(seconds=run_bound.run_end_seconds) > standby.interval
    assert run.callback.path == "cutover_kit.notifiers.deadlines.notify_deadline_missed"
    assert run.callback.kwargs["conn_id"] == "cutover_notifications"


def test_wiring_refuses_a_dag_without_the_tasks_it_reports_from():
    from airflow.sdk import DAG

    from cutover_kit.notifiers.cutover import wire_cutover_notifications, wire_emergency_notifications

    with DAG("not_the_cutover", schedule=None) as empty:
        pass
    with pytest.raises(KeyError, match="'rollback.verify_blue_serving'"):
        wire_cutover_notifications(empty)
    with pytest.raises(KeyError, match="'latch_emergency_stop'"):
        wire_emergency_notifications(empty)
