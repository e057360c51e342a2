"""The go/no-go approvals in the cutover DAG's shape: before 50 % and 100 % (the default plan's
approvals.before_steps), each watching the step before it, each routing to the next step's flags
or to its own halt in the rollback group, whose rollback and verdict see it like any other halt."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
S10, S13 = "stage_10_traffic_migration", "stage_13_full_cutover"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO_ROOT / "dags" / "cutover.py"), include_examples=False)
    assert bag.import_errors == {}
    return bag.dags["cutover"]


@pytest.mark.parametrize(("approve", "previous_decide", "watched_weights", "next_flags", "halt"), [
    (f"{S10}.step_50.approve", f"{S10}.step_25.decide", f"{S10}.step_25.set_weights", f"{S10}.step_50.set_flags",
     "rollback.halt_at_50_approval"),
    (f"{S13}.step_100.approve", f"{S10}.step_50.decide", f"{S10}.step_50.set_weights", f"{S13}.step_100.set_flags",
     "rollback.halt_at_100_approval"),
])
def test_an_approval_sits_between_the_previous_step_and_the_next_step_s_flags(dag, approve, previous_decide,
                                                                              watched_weights, next_flags, halt):
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    from cutover_kit.notifiers.webhook import ApprovalRequestNotifier
    from cutover_kit.operators.approval import StepApprovalOperator

    task = dag.get_task(approve)
    assert isinstance(task, StepApprovalOperator) and isinstance(task, ApprovalOperator)
    assert task.upstream_task_ids == {previous_decide}
    assert dag.get_task(previous_decide).downstream_task_ids >= {approve}  # the previous step proceeds to the approval
    assert task.watching_weights_task_id == watched_weights  # it watches the step on green while it waits
    assert task.defaults == ["Reject"] and task.options == ["Approve", "Reject"]  # the timeout's safe default
    assert any(isinstance(n, ApprovalRequestNotifier) for n in task.notifiers)
    assert task.retries == 0
    branch = approve.replace(".approve", ".decide_approval")
    assert task.downstream_task_ids == {branch}
    assert dag.get_task(branch).downstream_task_ids == {next_flags, halt}
    assert dag.get_task(branch).trigger_rule == "none_skipped"  # a failed approval (a halt while waiting) still routes
    assert dag.get_task(next_flags).upstream_task_ids == {branch}  # no way around the approval
    assert dag.get_task(halt).downstream_task_ids == {"rollback.flags_to_rails"}


def test_steps_without_approval_start_at_their_flags(dag):
    for step in (5, 25):
        assert f"{S10}.step_{step}.approve" not in dag.task_ids
    assert dag.get_task(f"{S10}.step_5.decide").downstream_task_ids == {f"{S10}.step_25.set_flags", "rollback.halt_at_5"}


def test_the_verdict_counts_approval_halts_like_any_other_halt(dag):
    verdict = dag.get_task("cutover_verdict")
    halts = verdict.op_args[1]
    assert {"rollback.halt_at_50_approval", "rollback.halt_at_100_approval"} <= set(halts)
    from cutover_kit.stages.rollback import HALT_TASK_PREFIX

    assert all(h.startswith(HALT_TASK_PREFIX) for h in ("rollback.halt_at_50_approval", "rollback.halt_at_100_approval"))


def test_stage_1_learns_where_the_dag_has_approval_tasks(dag):
    validate = dag.get_task("stage_01_deployment_readiness.validate_plan")
    assert validate.op_kwargs["dag_approval_steps"] == [50, 100]
