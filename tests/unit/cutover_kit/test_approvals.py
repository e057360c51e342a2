"""The go/no-go approval decisions (cutover_kit.approvals), without Airflow: what one poll of the
wait decides, what is recorded, and where the run goes after it."""

from __future__ import annotations

import pytest

from cutover_kit.approvals import (
    APPROVE, AUTO_APPROVER, REJECT, ApprovalAnswer, ApprovalOutcome, ApprovalPolicy, approval_halt_reason,
    choose_after_approval, decide_while_awaiting, immediate_record,
)

NOW = 1_800_000_000.0
POLICY = ApprovalPolicy(before_steps=(50, 100), assigned_users=("alice",), timeout_seconds=600, auto_approve=False)


def wait(gate_halted=False, answer=None, now=NOW, deadline=NOW + 600):
    return decide_while_awaiting(gate_halted, "Halt at 25 %: green 5xx 3.0 % > 1.0 % (2 breaches in a row)", answer,
                                 now=now, deadline=deadline, watching="25 %", asking="50 %")


def test_no_answer_before_the_deadline_keeps_watching():
    decision = wait()
    assert decision.outcome is None and decision.line is None


def test_an_approval_proceeds_and_names_the_approver():
    decision = wait(answer=ApprovalAnswer((APPROVE,), "alice", NOW - 1))
    assert decision.outcome is ApprovalOutcome.APPROVED and decision.outcome.proceeds
    assert decision.line == "Proceed to 50 %: approved by alice; 25 % stayed within its SLOs while waiting"


def test_a_rejection_rolls_back_and_names_who_rejected():
    decision = wait(answer=ApprovalAnswer((REJECT,), "bob", NOW - 1))
    assert decision.outcome is ApprovalOutcome.REJECTED and not decision.outcome.proceeds
    assert decision.line == "Roll back at 25 %: 50 % Reject by bob"


def test_the_deadline_without_an_answer_takes_the_safe_default_reject():
    decision = wait(now=NOW + 600, deadline=NOW + 600)
    assert decision.outcome is ApprovalOutcome.TIMED_OUT and not decision.outcome.proceeds
    assert "nobody approved 50 % by the deadline" in decision.line and "never promote" in decision.line


def test_no_deadline_never_times_out():
    assert wait(now=NOW + 10**9, deadline=None).outcome is None


def test_a_breach_wins_over_an_approval_in_the_same_poll():
    decision = wait(gate_halted=True, answer=ApprovalAnswer((APPROVE,), "alice", NOW))
    assert decision.outcome is ApprovalOutcome.WATCH_HALTED and not decision.outcome.proceeds
    assert decision.line.startswith("Halt at 25 %: green 5xx 3.0 %") and decision.line.endswith("; the approval request for 50 % is closed")


def test_a_breach_after_the_deadline_is_still_reported_as_the_breach():
    assert wait(gate_halted=True, now=NOW + 601).outcome is ApprovalOutcome.WATCH_HALTED


def test_an_answer_that_arrived_before_the_deadline_counts_even_if_read_after_it():
    decision = wait(answer=ApprovalAnswer((APPROVE,), "alice", NOW + 599), now=NOW + 605)
    assert decision.outcome is ApprovalOutcome.APPROVED


def test_auto_approve_is_recorded_as_automatic_with_the_time():
    policy = ApprovalPolicy((50, 100), ("alice",), 600, auto_approve=True)
    record = immediate_record(policy, 50, "rehearsal", NOW)
    assert record["outcome"] == "auto_approved" and record["proceeds"] is True
    assert record["approver"] == AUTO_APPROVER == "auto (plan rehearsal)"
    assert record["decided_at"] == NOW and record["chosen_options"] == [APPROVE]
    assert record["line"] == "Approved 50 % automatically: plan 'rehearsal' sets auto_approve (rehearsal)"


def test_a_step_the_plan_does_not_guard_is_not_asked():
    assert immediate_record(POLICY, 25, "default", NOW)["outcome"] == "not_asked"
    assert immediate_record(None, 50, "bare", NOW)["line"] == "No approval before 50 %: plan 'bare' asks none there"


def test_a_step_that_waits_for_a_person_has_no_immediate_record():
    assert immediate_record(POLICY, 50, "default", NOW) is None


@pytest.mark.parametrize("outcome", ["approved", "auto_approved", "not_asked"])
def test_only_a_recorded_approval_proceeds(outcome):
    record = {"outcome": outcome, "proceeds": True, "line": "ok"}
    assert choose_after_approval(record, "next", "halt") == ("next", "Proceed: ok")


@pytest.mark.parametrize("outcome", ["rejected", "timed_out", "watch_halted"])
def test_everything_else_rolls_back(outcome):
    record = {"outcome": outcome, "proceeds": False, "line": "why"}
    assert choose_after_approval(record, "next", "halt") == ("halt", "Roll back: why")


def test_a_record_that_says_proceeds_but_is_a_rejection_still_rolls_back():
    assert choose_after_approval({"outcome": "rejected", "proceeds": True, "line": "x"}, "next", "halt")[0] == "halt"


def test_a_missing_record_rolls_back():
    assert choose_after_approval(None, "next", "halt") == (
        "halt", "Roll back: the approval did not report (it or a task before it failed)")
    assert "did not report" in approval_halt_reason("50 %", None)


def test_policy_round_trips():
    assert ApprovalPolicy.from_dict(POLICY.to_dict()) == POLICY
