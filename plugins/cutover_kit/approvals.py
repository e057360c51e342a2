"""Go/no-go approvals before big steps, as pure decisions: no Airflow, no I/O.

A plan's ``approvals`` (:class:`ApprovalPolicy`) names the steps that wait for a person, who may
answer, and how long to wait. While an approval waits, the gate of the step already on green keeps
judging (Flagger's confirm hooks do not: fluxcd/flagger#1801). :func:`decide_while_awaiting` turns
one poll of that watch (did the gate halt?) plus the approval's state into one decision:

- a breach (the gate's HALT: consecutive SLO breaches, an emergency stop) rolls back at once, even
  if an answer arrived in the same poll;
- an answer ends the wait: Approve proceeds, Reject rolls back;
- no answer by the deadline takes the safe default: reject (hold, then roll back; never promote);
- otherwise keep watching: a baked gate (PROMOTE) or a step timeout does not end a watch, only a
  breach or the answer does.

Every decision becomes one :func:`approval_record` in XCom (key :data:`APPROVAL_XCOM_KEY`): what
was asked, who answered what and when, how (a person, the rehearsal's automatic answer, the
timeout default, the watch), and the one log line that explains it. :func:`choose_after_approval`
routes on that record: only an approval proceeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

APPROVAL_XCOM_KEY = "approval"
APPROVE = "Approve"  # the provider's ApprovalOperator.APPROVE / REJECT, written once here
REJECT = "Reject"
AUTO_APPROVER = "auto (plan rehearsal)"


class ApprovalOutcome(str, Enum):
    APPROVED = "approved"  # a person chose Approve
    AUTO_APPROVED = "auto_approved"  # the plan says auto_approve (rehearsals)
    NOT_ASKED = "not_asked"  # the run's plan asks no approval before this step
    REJECTED = "rejected"  # a person chose Reject
    TIMED_OUT = "timed_out"  # nobody answered in time: the safe default, reject
    WATCH_HALTED = "watch_halted"  # the gate watching the current step halted while waiting

    @property
    def proceeds(self) -> bool:
        return self in (ApprovalOutcome.APPROVED, ApprovalOutcome.AUTO_APPROVED, ApprovalOutcome.NOT_ASKED)


@dataclass(frozen=True)
class ApprovalPolicy:
    """A plan's ``approvals`` section (schema-checked in cutover_kit.plan.schema)."""

    before_steps: tuple[int, ...]
    assigned_users: tuple[str, ...]
    timeout_seconds: int
    auto_approve: bool

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApprovalPolicy:
        return cls(tuple(int(step) for step in data["before_steps"]), tuple(str(user) for user in data["assigned_users"]),
                   int(data["timeout_seconds"]), bool(data["auto_approve"]))

    def to_dict(self) -> dict[str, Any]:
        return {"before_steps": list(self.before_steps), "assigned_users": list(self.assigned_users),
                "timeout_seconds": self.timeout_seconds, "auto_approve": self.auto_approve}

    def asks_before(self, percent: int) -> bool:
        return percent in self.before_steps


@dataclass(frozen=True)
class ApprovalAnswer:
    """What the approval's HITL record holds once answered."""

    chosen_options: tuple[str, ...]
    responded_by: str | None  # the user's name (None: nobody; the timeout default or the system)
    responded_at: float  # epoch seconds

    @property
    def approved(self) -> bool:
        return self.chosen_options == (APPROVE,)


@dataclass(frozen=True)
class WaitDecision:
    outcome: ApprovalOutcome | None  # None: keep watching; else the wait ends (outcome.proceeds or roll back)
    line: str | None


def approval_label(percent: int) -> str:
    return f"{percent} %"


def decide_while_awaiting(gate_halted: bool, gate_line: str, answer: ApprovalAnswer | None, *, now: float,
                          deadline: float | None, watching: str, asking: str) -> WaitDecision:
    """One poll of the wait: did the watch gate on the step on green (`watching`, "25 %") halt,
    and the approval for the next step (`asking`, "50 %"). See the module doc for the rules.
    The gate's other decisions (baked, timed out, holding) never end a wait: only a halt does."""
    if gate_halted:
        return WaitDecision(ApprovalOutcome.WATCH_HALTED,
                            f"{gate_line}; the approval request for {asking} is closed")
    if answer is not None:
        who = answer.responded_by or "nobody (a default)"
        if answer.approved:
            return WaitDecision(ApprovalOutcome.APPROVED,
                                f"Proceed to {asking}: approved by {who}; {watching} stayed within its SLOs while waiting")
        return WaitDecision(ApprovalOutcome.REJECTED,
                            f"Roll back at {watching}: {asking} {'/'.join(answer.chosen_options) or 'no option'} "
                            f"by {who}")
    if deadline is not None and now >= deadline:
        return WaitDecision(ApprovalOutcome.TIMED_OUT,
                            f"Roll back at {watching}: nobody approved {asking} by the deadline; the safe default is "
                            "reject (hold, then roll back; never promote)")
    return WaitDecision(None, None)


def approval_record(outcome: ApprovalOutcome, *, step: str, line: str, asked_at: float | None, decided_at: float,
                    approver: str | None = None, chosen_options: tuple[str, ...] | list[str] = (),
                    assigned_users: tuple[str, ...] | list[str] = (), timeout_seconds: int | None = None,
                    watch: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the approval task leaves in XCom (key APPROVAL_XCOM_KEY): who approved what and when."""
    return {
        "step": step,
        "outcome": outcome.value,
        "proceeds": outcome.proceeds,
        "approver": approver,
        "chosen_options": list(chosen_options),
        "assigned_users": list(assigned_users),
        "timeout_seconds": timeout_seconds,
        "asked_at": asked_at,
        "decided_at": decided_at,
        "waited_seconds": None if asked_at is None else round(decided_at - asked_at, 3),
        "line": line,
        "watch": watch,
    }


def immediate_record(policy: ApprovalPolicy | None, percent: int, plan_name: str, now: float) -> dict[str, Any] | None:
    """The record of an approval that does not wait (the plan asks none before this step, or
    answers automatically); None when a person must answer."""
    step = approval_label(percent)
    if policy is None or not policy.asks_before(percent):
        return approval_record(ApprovalOutcome.NOT_ASKED, step=step, asked_at=None, decided_at=now,
                               line=f"No approval before {step}: plan {plan_name!r} asks none there")
    if policy.auto_approve:
        return approval_record(ApprovalOutcome.AUTO_APPROVED, step=step, asked_at=now, decided_at=now,
                               approver=AUTO_APPROVER, chosen_options=(APPROVE,), assigned_users=policy.assigned_users,
                               line=f"Approved {step} automatically: plan {plan_name!r} sets auto_approve (rehearsal)")
    return None


def choose_after_approval(record: dict[str, Any] | None, proceed_task_id: str, halt_task_id: str) -> tuple[str, str]:
    """Proceed only on a recorded approval; anything else (rejected, timed out, a halt while waiting,
    no record because the task broke) rolls back. Returns (task_id, log line)."""
    if record and record.get("proceeds") and ApprovalOutcome(record["outcome"]).proceeds:
        return proceed_task_id, f"Proceed: {record['line']}"
    if record:
        return halt_task_id, f"Roll back: {record['line']}"
    return halt_task_id, "Roll back: the approval did not report (it or a task before it failed)"


def approval_halt_reason(step: str, record: dict[str, Any] | None) -> str:
    """The halt's reason for the rollback group and the run's verdict."""
    if record and record.get("line"):
        return record["line"]
    return f"Halt before {step}: the approval did not report (it or a task before it failed)"


def answer_to_dict(answer: ApprovalAnswer | None) -> dict[str, Any] | None:
    return None if answer is None else {**asdict(answer), "chosen_options": list(answer.chosen_options)}


#: Airflow 3.2's scheduler can fail a deferred task whose trigger fires seconds after the deferral:
#: the executor's "success" for the worker's defer-exit is processed after the trigger event has
#: re-queued the task, and is taken for an external state change (apache/airflow#67287, #71580;
#: seen here: approved 1 s after the request, the approval task then FAILED and the run rolled
#: back). The approval watch therefore never delivers its event sooner than this after asking; a
#: person answers in minutes, and a halt's reflex rollback has already run inside the trigger.
RESUME_GUARD_SECONDS = 20.0


def resume_guard_remaining(asked_at: float | None, now: float, guard_seconds: float = RESUME_GUARD_SECONDS) -> float:
    """Seconds the watch still holds its event back (0 when the deferral is old enough)."""
    if asked_at is None:
        return 0.0
    return max(0.0, asked_at + guard_seconds - now)
