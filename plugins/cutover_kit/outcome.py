"""Pure decisions after a gate, and the cutover's final outcome."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any


def choose_after_gate(gate_result: dict[str, Any] | None, proceed_task_id: str, halt_task_id: str) -> tuple[str, str]:
    """Proceed only on an explicit successful gate result; anything else (failed, inconclusive,
    missing because the gate or an upstream task broke) halts. Returns (task_id, log line)."""
    if gate_result and gate_result.get("status") == "success":
        return proceed_task_id, f"Proceed: {gate_result.get('line', 'gate passed')}"
    if gate_result:
        return halt_task_id, f"Roll back: {gate_result.get('line') or gate_result.get('reason')}"
    return halt_task_id, "Roll back: the gate did not report (it or a task before it failed)"


def choose_after_validation(
    summary: dict[str, Any] | None,
    validation_failure: dict[str, Any] | None,
    expand_result: dict[str, Any] | None,
    proceed_task_ids: list[str],
    halt_task_id: str,
) -> tuple[list[str] | str, str]:
    """Traffic stages start only after an explicit, complete validation pass.

    Otherwise the database is rolled back (down migration) only when there is something of this
    run's to undo: the suite ran and failed, or this run applied the expand. A run stopped before
    it changed the schema (a refused plan, a missing Connection, a latched emergency stop, a
    failed backup) leaves the database alone: returns [] and every later stage is skipped."""
    if summary and summary.get("verdict") == "PASS" and not summary.get("failed"):
        return proceed_task_ids, f"Proceed: {summary.get('reason', 'validation passed')}"
    if validation_failure or summary:  # the suite ran and did not pass cleanly
        detail = (validation_failure or summary or {}).get("reason") or "validation failed"
        return halt_task_id, f"Roll back the database: {detail}"
    if expand_result and expand_result.get("applied"):
        return halt_task_id, ("Roll back the database: this run applied the expand and validation did not pass "
                              "(a task before it failed)")
    return [], ("Halt, database left as it was: the run stopped before it changed the schema "
                "(no expand applied by this run, no validation ran); nothing to roll back")


def choose_after_load_test(summary: Mapping[str, Any] | None, failure: Mapping[str, Any] | None,
                           states: Mapping[str, str | None], proceed_task_id: str, halt_task_id: str) -> tuple[list[str] | str, str]:
    """Proceed only on an explicit pass. A halt verdict, or a stage-6 task that failed, halts
    (green gets no traffic); when stage 6 never ran (an earlier stage failed) nothing follows."""
    if summary and summary.get("verdict") == "pass":  # cutover_kit.load.capacity.PASS
        return proceed_task_id, f"Proceed: {summary.get('reason')}"
    if summary:  # the judge's reason already reads "Halt before traffic: ..."
        return halt_task_id, str(summary.get("reason"))
    if failure:
        return halt_task_id, f"Halt before traffic: {failure.get('reason')}"
    failed = sorted(task for task, state in states.items() if state == "failed")
    if failed:
        return halt_task_id, f"Halt before traffic: stage 6 task(s) failed: {', '.join(failed)}"
    return [], "Stage 6 did not run (an earlier stage failed): nothing follows, no traffic moved"


def choose_after_security_audit(summary: Mapping[str, Any] | None, failure: Mapping[str, Any] | None,
                                judge_state: str | None, proceed_task_id: str, halt_task_id: str) -> tuple[list[str] | str, str]:
    """Proceed only on the judge's explicit pass. A halt verdict, or a judge that failed without
    a verdict, halts (green gets no traffic); a judge that never ran (stage 7 was skipped, e.g.
    stage 6 halted) leaves nothing to follow."""
    if summary and summary.get("verdict") == "pass":  # cutover_kit.security.judge.PASS
        return proceed_task_id, f"Proceed: {summary.get('reason')}"
    if summary:  # the judge's reason reads "Halt before traffic: ..."
        return halt_task_id, str(summary.get("reason"))
    if failure:
        return halt_task_id, f"Halt before traffic: {failure.get('reason')}"
    if judge_state in ("failed", "upstream_failed"):
        return halt_task_id, f"Halt before traffic: the security judge {judge_state} without a verdict"
    return [], f"Stage 7 did not run (judge {judge_state}): nothing follows, no traffic moved"



def halt_reason(step_label: str, gate_result: dict[str, Any] | None, smoke_result: dict[str, Any] | None, failed_tasks: list[str]) -> str:
    if gate_result and gate_result.get("status") != "success":
        return gate_result.get("line") or f"Halt at {step_label}: {gate_result.get('reason')}"
    if smoke_result and smoke_result.get("verdict") == "FAIL":
        return f"Halt at {step_label}: {smoke_result['reason']}"
    if failed_tasks:
        return f"Halt at {step_label}: task(s) failed: {', '.join(failed_tasks)}"
    if gate_result is None:
        return f"Halt at {step_label}: the gate did not run (an earlier stage failed)"
    return f"Halt at {step_label}: no healthy gate result"


@dataclass(frozen=True)
class CutoverOutcome:
    outcome: str  # "promoted" | "rolled_back" | "failed"
    reason: str

    @property
    def succeeded(self) -> bool:
        return self.outcome == "promoted"


def final_outcome(
    promotion: dict[str, Any] | None,
    halt: dict[str, Any] | None,
    rollback: dict[str, Any] | None,
    failed_tasks: list[str],
    integrity_failed: bool = False,
    emergency_stop: str | None = None,
) -> CutoverOutcome:
    """`emergency_stop` describes a stop an operator latched during the run (control.EmergencyStop)."""
    if integrity_failed:  # lost or inconsistent data outranks every other result
        before = f" after: {halt['reason']}" if halt else ""
        return CutoverOutcome("failed", f"Data integrity check failed{before}")
    if halt:
        flags_failed = [task for task in failed_tasks if task.endswith("flags_to_rails")]
        if flags_failed and rollback and rollback.get("verified"):
            # Traffic is back on blue, but green would still serve its own code if it got traffic.
            return CutoverOutcome("failed", f"Rollback NOT verified: flags not back on Rails ({flags_failed[0]} failed) after: {halt['reason']}")
        if rollback and rollback.get("verified"):
            return CutoverOutcome("rolled_back", f"Rolled back: {halt['reason']}")
        return CutoverOutcome("failed", f"Rollback NOT verified after: {halt['reason']}")
    if emergency_stop:
        # No step of this run halted, so its own rollback path did not run: the emergency_rollback
        # run did the rollback and verifies it; this run must not look promoted.
        state = "after promotion" if promotion else "before promotion"
        return CutoverOutcome("failed", f"Stopped {state} by {emergency_stop}; see that emergency_rollback run")
    if promotion and not failed_tasks:
        return CutoverOutcome("promoted", promotion["reason"])
    if failed_tasks:
        return CutoverOutcome("failed", f"Cutover stopped: failed task(s) {', '.join(sorted(failed_tasks))}")
    return CutoverOutcome("failed", "Cutover ended without promotion or rollback")
