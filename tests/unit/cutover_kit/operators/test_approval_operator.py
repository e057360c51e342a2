"""StepApprovalOperator without a scheduler: with auto_approve (or a step the plan does not guard)
it records the answer and returns without deferring; otherwise it writes the provider's HITL
request with the plan's approvers and defers to the watch trigger; execute_complete records who
answered what and when, and fails only when the step on green halted while it waited."""

from __future__ import annotations

import dataclasses
import time
import uuid
from types import SimpleNamespace

import pytest

from cutover_kit.approvals import APPROVAL_XCOM_KEY, ApprovalPolicy
from cutover_kit.operators.approval import StepApprovalOperator
from cutover_kit.plan import load_plan
from cutover_kit.sensors.slo_gate import DEFERRAL_MARGIN

RUN_ID = "manual__2026-12-07T19:00:00+00:00"
REHEARSAL = load_plan("rehearsal")
WAITING = dataclasses.replace(REHEARSAL, approvals=ApprovalPolicy((50, 100), ("alice", "bob"), 600, False))


class FakeTI:
    dag_id = "cutover"
    task_id = "stage_10_traffic_migration.step_50.approve"
    run_id = RUN_ID

    def __init__(self, plan, weights=None) -> None:
        self.id = uuid.UUID("0190f3a2-0000-7000-8000-000000000001")
        self.xcoms = {"plan": plan.to_dict(), "weights_25": weights, "baseline": {"window": {"color": "blue"}}}
        self.pushed: dict[str, object] = {}

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcoms.get(task_ids)

    def xcom_push(self, key, value):
        self.pushed[key] = value


def operator(**overrides):
    arguments = dict(task_id="approve", percent=50, watching_percent=25, watching_weights_task_id="weights_25",
                     plan_task_id="plan", baseline_task_id="baseline")
    return StepApprovalOperator(**{**arguments, **overrides})


def context(ti):
    return {"ti": ti, "task_instance": ti, "run_id": RUN_ID}


def test_auto_approve_records_an_automatic_approval_and_does_not_defer():
    ti = FakeTI(REHEARSAL)
    record = operator().execute(context(ti))
    assert ti.pushed[APPROVAL_XCOM_KEY] == record
    assert record["outcome"] == "auto_approved" and record["approver"] == "auto (plan rehearsal)"
    assert record["step"] == "50 %" and abs(record["decided_at"] - time.time()) < 5


def test_a_step_the_plan_does_not_guard_records_not_asked():
    ti = FakeTI(dataclasses.replace(REHEARSAL, approvals=None))
    assert operator().execute(context(ti))["outcome"] == "not_asked"


@pytest.fixture
def hitl_requests(monkeypatch):
    """Stands in for the Execution API's HITL upsert and the emergency-stop check."""
    written = []
    import airflow.sdk.execution_time.hitl as hitl
    import cutover_kit.stages._shared as shared

    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **kwargs: written.append(kwargs))
    monkeypatch.setattr(shared, "ensure_not_stopped", lambda action: None)
    return written


def test_a_person_s_approval_is_asked_of_the_plan_s_approvers_and_the_watch_defers(hitl_requests):
    from airflow.sdk.exceptions import TaskDeferred

    from cutover_kit.triggers.approval import ApprovalWatchTrigger

    ti = FakeTI(WAITING, weights={"set_at": 1000.0, "percent": 25})
    sent = []
    task = operator(notifiers=[])
    task.notifiers = [lambda ctx: sent.append(ctx)]
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context(ti))
    [request] = hitl_requests
    assert request["assigned_users"] == [{"id": "alice", "name": "alice"}, {"id": "bob", "name": "bob"}]
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert "No answer by" in request["body"] and "counts as Reject" in request["body"]
    assert len(sent) == 1  # the request went out with its link, after the record existed
    trigger = deferred.value.trigger
    assert isinstance(trigger, ApprovalWatchTrigger)
    assert trigger.ti_id == str(ti.id) and trigger.asking == "50 %" and trigger.watching == "25 %"
    assert trigger.weights_set_at == 1000.0 and trigger.green_percent == 25.0
    assert trigger.deadline - trigger.gate_started_at == 600
    assert trigger.haproxy_conn_id and trigger.state_conn_id  # reflex rollback and emergency stop, as any gate
    assert (trigger.dag_id, trigger.run_id) == ("cutover", RUN_ID)  # its heartbeat is watched
    assert deferred.value.timeout.total_seconds() == 600 + DEFERRAL_MARGIN.total_seconds()


def test_no_weights_of_the_step_on_green_refuses_before_asking(hitl_requests):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="cannot be watched while waiting"):
        operator().execute(context(FakeTI(WAITING, weights=None)))
    assert hitl_requests == []


def event(outcome, status, line, answer=None, **extra):
    return {"approval_outcome": outcome, "status": status, "line": line, "answer": answer, "decided_at": 2000.0,
            "elapsed_seconds": 120.0, "step": "25 % (awaiting approval of 50 %)", "polls": 120, **extra}


def test_an_approval_is_recorded_with_who_and_when():
    ti = FakeTI(WAITING)
    answer = {"chosen_options": ["Approve"], "responded_by": "alice", "responded_at": 1990.0}
    record = operator().execute_complete(context(ti), event("approved", "success", "Proceed to 50 %: approved by alice", answer))
    assert ti.pushed[APPROVAL_XCOM_KEY] == record
    assert (record["outcome"], record["approver"], record["chosen_options"]) == ("approved", "alice", ["Approve"])
    assert (record["asked_at"], record["decided_at"], record["waited_seconds"]) == (1880.0, 1990.0, 110.0)
    assert record["assigned_users"] == ["alice", "bob"] and record["timeout_seconds"] == 600
    assert record["watch"]["polls"] == 120


def test_the_wait_is_measured_from_when_the_operator_asked_not_from_the_polls_clock():
    # A poll's elapsed time is taken at its start, decided_at at its end: under load they are seconds
    # apart, and decided_at - elapsed put the question 8 s after its answer in an e2e run.
    answer = {"chosen_options": ["Approve"], "responded_by": "alice", "responded_at": 1990.0}
    record = operator().execute_complete(context(FakeTI(WAITING)), event(
        "approved", "success", "Proceed to 50 %: approved by alice", answer, elapsed_seconds=1.0, asked_at=1985.0))
    assert (record["asked_at"], record["waited_seconds"]) == (1985.0, 5.0)


def test_a_timeout_is_an_answer_recorded_as_the_safe_default():
    record = operator().execute_complete(context(FakeTI(WAITING)), event("timed_out", "failed", "Roll back at 25 %: nobody"))
    assert record["proceeds"] is False and record["chosen_options"] == ["Reject"]
    assert record["approver"] == "nobody (timeout: the safe default)"


def test_a_halt_while_waiting_fails_the_task_after_recording_it():
    from airflow.sdk.exceptions import AirflowFailException

    ti = FakeTI(WAITING)
    with pytest.raises(AirflowFailException, match="Halt at 25 %"):
        operator().execute_complete(context(ti), event("watch_halted", "failed", "Halt at 25 %: green 5xx",
                                                       traffic_restored_at=1999.0, request_closed=True))
    assert ti.pushed[APPROVAL_XCOM_KEY]["watch"]["traffic_restored_at"] == 1999.0
