"""ApprovalWatchTrigger: waits for a go/no-go answer while the SLO gate keeps judging the step on green.

One trigger, one loop: it is the :class:`~cutover_kit.triggers.slo_gate.SLOGateTrigger` of the step
already on green (same measurements, emergency-stop check, heartbeat for the gate watchdog, reflex
rollback), and on every poll it also reads the approval's human-in-the-loop record (the same
Execution-API call the provider's HITLTrigger makes every 5 s). The pure rule
(:func:`cutover_kit.approvals.decide_while_awaiting`) ends the wait:

- the gate halts (SLO breach, emergency stop, or the gate's own error): at once, with the gate's
  reflex rollback (flags -> Rails, traffic -> blue) before the event; the open request is then
  answered "Reject" by the system, so a late "Approve" gets HTTP 409 instead of resuming nothing;
- a person answers: Approve ends the watch as a promote (the next step follows); Reject ends it as
  a halt, with the reflex rollback, like a breach;
- the deadline passes unanswered: the safe default, reject: the request is answered "Reject" (as
  the provider's timeout default would) and the watch halts with the reflex rollback.

A baked gate or a step timeout does not end the wait: only a halt or the answer does.

The provider's HITLTrigger runs two loops' worth of nothing here: this trigger replaces it for the
approval operator (cutover_kit.operators.approval), which writes the HITL record exactly as the
provider does, so the UI's "required actions" and the REST API answer it unchanged.

Two more seams, overridden by the unit tests and never serialized: :meth:`_read_answer` and
:meth:`_close_request`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from asgiref.sync import sync_to_async
from airflow.triggers.base import TriggerEvent

from cutover_kit.approvals import (
    REJECT, RESUME_GUARD_SECONDS, ApprovalAnswer, ApprovalOutcome, answer_to_dict, decide_while_awaiting,
    resume_guard_remaining,
)
from cutover_kit.gate import GateDecision
from cutover_kit.triggers.slo_gate import SLOGateTrigger


class ApprovalWatchTrigger(SLOGateTrigger):
    def __init__(self, *, ti_id: str, asking: str, watching: str, deadline: float | None, **gate_kwargs: Any) -> None:
        super().__init__(**gate_kwargs)
        self.ti_id = ti_id
        self.asking = asking
        self.watching = watching
        self.deadline = deadline
        self._answer: ApprovalAnswer | None = None
        self._outcome: ApprovalOutcome | None = None
        self._answer_unreadable = False
        #: Not serialized: the unit tests set it to 0.
        self.resume_guard_seconds = RESUME_GUARD_SECONDS

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, gate_kwargs = super().serialize()
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {**gate_kwargs, "ti_id": self.ti_id, "asking": self.asking, "watching": self.watching,
             "deadline": self.deadline},
        )

    def _read_answer(self) -> ApprovalAnswer | None:
        """The approval's answer, None while unanswered. Runs in a worker thread."""
        from uuid import UUID

        from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail

        detail = get_hitl_detail_content_detail(ti_id=UUID(self.ti_id))
        if not (detail.response_received and detail.chosen_options):
            return None
        user = detail.responded_by_user
        at = detail.responded_at.timestamp() if detail.responded_at else time.time()
        return ApprovalAnswer(tuple(detail.chosen_options), user.name if user else None, at)

    def _close_request(self) -> None:
        """Answer the open request "Reject" on the system's behalf (no user): the record shows the
        wait is over, and a later answer is refused (409). Runs in a worker thread."""
        from uuid import UUID

        from airflow.sdk.execution_time.hitl import update_hitl_detail_response

        update_hitl_detail_response(ti_id=UUID(self.ti_id), chosen_options=[REJECT], params_input={})

    async def _poll_answer(self) -> ApprovalAnswer | None:
        try:
            answer = await sync_to_async(self._read_answer)()
        except Exception as error:  # noqa: BLE001 - the watch goes on; the deadline still applies
            if not self._answer_unreadable:
                self.log.warning("Approval for %s: its answer could not be read (the watch goes on, the deadline "
                                 "still applies): %s: %s", self.asking, type(error).__name__, error)
            self._answer_unreadable = True
            return None
        self._answer_unreadable = False
        return answer

    async def _settle(self, decision: GateDecision, line: str) -> tuple[GateDecision, str]:
        halted = decision is GateDecision.HALT
        answer = None if halted else await self._poll_answer()
        wait = decide_while_awaiting(halted, line, answer, now=time.time(), deadline=self.deadline,
                                     watching=self.watching, asking=self.asking)
        if wait.outcome is None:
            # Baked or past the step timeout: neither ends a wait. The line still says how green does.
            if decision is GateDecision.CONTINUE:
                return decision, line
            state = "baked" if decision is GateDecision.PROMOTE else "past its step timeout, still judging"
            return GateDecision.CONTINUE, f"Hold at {self.step_label}: {state}, waiting for the answer; last: {line}"
        self._answer, self._outcome = answer, wait.outcome
        return (GateDecision.PROMOTE if wait.outcome.proceeds else GateDecision.HALT), wait.line

    def _event_extras(self) -> dict[str, Any]:
        # asked_at as the operator recorded it: decided_at - elapsed_seconds is not, because a poll's
        # elapsed time is taken at its start and decided_at at its end (seconds apart under load,
        # which once made an approval look answered 8 s before it was asked).
        return {"approval_outcome": self._outcome.value if self._outcome else None,
                "answer": answer_to_dict(self._answer), "asking": self.asking, "deadline": self.deadline,
                "asked_at": self.gate_started_at}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in super().run():
            payload = event.payload
            if payload.get("approval_outcome") is None:  # the gate itself failed before deciding
                payload.update(approval_outcome=ApprovalOutcome.WATCH_HALTED.value, asking=self.asking,
                               deadline=self.deadline, answer=None, asked_at=self.gate_started_at)
            if payload["approval_outcome"] in (ApprovalOutcome.WATCH_HALTED.value, ApprovalOutcome.TIMED_OUT.value):
                try:
                    await sync_to_async(self._close_request)()
                    payload["request_closed"] = True
                except Exception as error:  # noqa: BLE001 - the rollback stands; only the record stays open
                    payload["request_closed"] = False
                    self.log.warning("Approval for %s: the open request could not be closed (a late answer would be "
                                     "recorded but changes nothing): %s: %s", self.asking, type(error).__name__, error)
            held = resume_guard_remaining(self.gate_started_at, time.time(), self.resume_guard_seconds)
            if held > 0:
                self.log.info("Approval for %s: event held %.1f s (Airflow's defer-resume race, see "
                              "cutover_kit.approvals.RESUME_GUARD_SECONDS): %s", self.asking, held, payload.get("line"))
                await asyncio.sleep(held)
            yield TriggerEvent(payload)
