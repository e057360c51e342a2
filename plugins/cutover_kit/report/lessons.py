"""Lessons learned, filled in with the run's facts (one sentence each). Pure.

Only what the record shows: which gate halted and why, how long detection and each rollback level
took, how the drill compared, what was never judged. No advice is invented; each line is a fact a
post-incident review starts from.
"""

from __future__ import annotations

from cutover_kit.integrity import FIRST_LOOK_MARK
from cutover_kit.report.record import RunRecord, format_duration

#: Stages of the plan that this DAG does not run yet: the report says they were never judged.
STAGES_NOT_IN_DAG = {
    "load_test": "stage 6 (load testing): no load-test knees were measured",
    "security": "stage 7 (security audit): no security findings were judged",
}


_seconds = format_duration


def plan_steps(record: RunRecord) -> list[str]:
    """Every gate the plan would run, labelled like the gates ("5 %", ..., "100 % standby")."""
    steps = (record.plan or {}).get("steps") or []
    return [f"{step} %" for step in steps] + (["100 % standby"] if steps else [])


def never_judged(record: RunRecord) -> list[str]:
    judged = {gate.step for gate in record.gates}
    return [step for step in plan_steps(record) if step not in judged]


def halt_without_gate(record: RunRecord) -> str:
    """Who stopped a step that no gate halted (a smoke check, an operator, a failed task), and when."""
    rollback = record.rollback
    if rollback.emergency_stop:
        what = "an operator's emergency stop"
    elif FIRST_LOOK_MARK in rollback.reason:
        what = "stage 11's integrity probe (a lost or corrupted write)"
    elif "Smoke at" in rollback.reason:
        what = "a stage 11 smoke check"
    elif rollback.step == "database":
        what = "stage 2 (database preparation), before any traffic moved"
    else:
        what = "a failed task"
    set_at = max((w.at for w in record.weights if f"{w.green_percent:g} %" == rollback.step
                  and rollback.decided_at is not None and w.at <= rollback.decided_at), default=None)
    when = ("" if set_at is None else
            f", {_seconds(rollback.decided_at - set_at)} after the step's weights were set")
    return f"No gate halted: {what} stopped the run at {rollback.step}{when}."


def lessons(record: RunRecord) -> list[str]:
    facts = [f"Outcome: {record.outcome or 'unknown'}: {record.outcome_reason}"]
    halted = [gate for gate in record.gates if gate.status != "success"]
    passed = [gate for gate in record.gates if gate.status == "success"]
    if passed:
        facts.append(f"{len(passed)} gate(s) promoted: {', '.join(g.step for g in passed)}.")
    for gate in halted:
        kind = "halted" if gate.status == "failed" else "gave up without a verdict"
        detection = gate.detection_seconds
        since = "after the step's weights were set" if gate.weights_set_at is not None else "after the gate started"
        facts.append(
            f"The gate at {gate.step} {kind} after {gate.polls if gate.polls is not None else '?'} polls, "
            f"{_seconds(detection if detection is not None else gate.elapsed_seconds)} {since}: {gate.line or gate.reason}")
    rollback = record.rollback
    if rollback is not None and not halted:
        facts.append(halt_without_gate(record))
    if rollback is not None:
        verified = {True: "verified", False: "NOT verified", None: "verification not recorded"}[rollback.verified]
        facts.append(
            f"Rollback from {rollback.step}: flags -> Rails {_seconds(rollback.flags_seconds)} and traffic -> blue "
            f"{_seconds(rollback.traffic_seconds)} after the decision; blue serving alone {verified}.")
        if rollback.emergency_stop:
            facts.append(f"An operator stopped the run (emergency rollback {rollback.emergency_stop}).")
    if record.drill is not None and record.drill.rollback_seconds is not None:
        drill = f"The stage-8 drill rolled traffic back in {_seconds(record.drill.rollback_seconds)}"
        real = rollback.traffic_seconds if rollback is not None else None
        facts.append(drill + (f"; the real rollback took {_seconds(real)}." if real is not None else "; no real rollback was needed."))
    inconclusive = [g for g in record.gates if g.verdict == "INCONCLUSIVE"]
    if inconclusive:
        facts.append(f"Gate(s) ending INCONCLUSIVE (not enough data or no measurement): {', '.join(g.step for g in inconclusive)}.")
    skipped = never_judged(record)
    if skipped:
        facts.append(f"Never judged by a gate: {', '.join(skipped)}.")
    validation = record.data_validation
    if validation is None:
        facts.append("Data validation (Great Expectations) did not run.")
    elif validation.error:
        facts.append(f"Data validation failed without a summary: {validation.error}")
    else:
        facts.append(f"Data validation: {validation.expectations} expectations, {validation.failed} failed"
                     + (f" ({', '.join(validation.failed_names)})" if validation.failed_names else "") + ".")
    if record.series_note:
        facts.append(f"Metric series: {record.series_note}")
    for field, sentence in STAGES_NOT_IN_DAG.items():
        if getattr(record, field) is None:
            facts.append(f"Not part of this run: {sentence}.")
    return facts
