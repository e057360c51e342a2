"""The SLO gate as a pure state machine: one judgement per poll in, a decision out.

The deferrable trigger only measures and calls :func:`advance_gate`; every rule about when to
promote, halt or give up lives here and is tested without Airflow or Prometheus.

- HALT after ``consecutive_breaches`` FAIL verdicts with no PASS between them (one noisy poll
  does not roll back; an INCONCLUSIVE poll between two breaches does not excuse them).
- PROMOTE once PASS verdicts have covered ``bake_seconds`` (each PASS counts the time since the
  previous poll) *and* the latest verdict is PASS. A FAIL starts the bake again.
- INCONCLUSIVE polls (too little data, Prometheus silent or unreachable) count for nothing: they
  hold the step; when the step timeout passes first the gate gives up: TIMEOUT, which the DAG
  treats like a halt. Missing data never promotes, and never counts as baked time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import Enum
from typing import Any

from cutover_kit.change_windows import ChangeWindows, decide_advance
from cutover_kit.slo import Judgement, Verdict


class GateDecision(str, Enum):
    CONTINUE = "continue"
    PROMOTE = "success"
    HALT = "failed"
    TIMEOUT = "inconclusive"


@dataclass(frozen=True)
class GateProgress:
    polls: int = 0
    consecutive_breaches: int = 0
    passes: int = 0
    fails: int = 0
    inconclusives: int = 0
    healthy_seconds: float = 0.0  # time covered by PASS verdicts since the last FAIL
    last_elapsed_seconds: float = 0.0  # when the previous poll was judged (step time)


def advance_gate(
    progress: GateProgress,
    judgement: Judgement,
    elapsed_seconds: float,
    *,
    bake_seconds: float,
    step_timeout_seconds: float,
    consecutive_breach_limit: int,
) -> tuple[GateProgress, GateDecision]:
    verdict = judgement.verdict
    since_previous = max(0.0, elapsed_seconds - progress.last_elapsed_seconds)
    if verdict is Verdict.PASS:
        breaches, healthy = 0, progress.healthy_seconds + since_previous
    elif verdict is Verdict.FAIL:
        breaches, healthy = progress.consecutive_breaches + 1, 0.0
    else:  # INCONCLUSIVE: neither clears a breach nor counts as healthy time
        breaches, healthy = progress.consecutive_breaches, progress.healthy_seconds
    progress = GateProgress(
        polls=progress.polls + 1,
        consecutive_breaches=breaches,
        passes=progress.passes + (verdict is Verdict.PASS),
        fails=progress.fails + (verdict is Verdict.FAIL),
        inconclusives=progress.inconclusives + (verdict is Verdict.INCONCLUSIVE),
        healthy_seconds=healthy,
        last_elapsed_seconds=max(elapsed_seconds, progress.last_elapsed_seconds),
    )
    if progress.consecutive_breaches >= consecutive_breach_limit:
        return progress, GateDecision.HALT
    if progress.healthy_seconds >= bake_seconds and verdict is Verdict.PASS:
        return progress, GateDecision.PROMOTE
    if elapsed_seconds >= step_timeout_seconds:
        return progress, GateDecision.TIMEOUT
    return progress, GateDecision.CONTINUE


def initial_credit_start(elapsed_seconds: float, window_seconds: int) -> float:
    """Where a gate's (re)started count of healthy time begins: the start of the first window it
    will judge, so its first PASS counts what that window saw, and nothing older."""
    return max(0.0, elapsed_seconds - judging_window_seconds(elapsed_seconds, window_seconds))


def judging_window_seconds(elapsed_seconds: float, window_seconds: int) -> int:
    """The trailing window to query: never longer than the time since the step began (so data
    from the previous step does not leak into this one), never shorter than 2 s (two 1 s scrapes)."""
    return max(2, min(window_seconds, math.ceil(elapsed_seconds)))


def decision_line(decision: GateDecision, step_label: str, judgement: Judgement, progress: GateProgress) -> str:
    """One readable log line per decision, e.g. 'Halt at 25 %: green 5xx 3.2 % > 1.0 % ...'."""
    if decision is GateDecision.HALT:
        return f"Halt at {step_label}: {judgement.reason} ({progress.consecutive_breaches} breaches in a row)"
    if decision is GateDecision.PROMOTE:
        return (f"Promote past {step_label}: {judgement.reason} ({progress.healthy_seconds:.0f} s healthy, "
                f"{progress.passes}/{progress.polls} polls healthy)")
    if decision is GateDecision.TIMEOUT:
        return (f"Give up at {step_label}: step timeout before a full bake of healthy verdicts "
                f"({progress.healthy_seconds:.0f} s healthy); last: {judgement.reason}")
    return f"Hold at {step_label}: {judgement.verdict.value} {judgement.reason} ({progress.healthy_seconds:.0f} s healthy)"


def progress_to_dict(progress: GateProgress) -> dict[str, Any]:
    """The progress as persisted with the gate's heartbeat (cutover_kit.dead_man): JSON values."""
    return {field.name: list(value) if isinstance(value := getattr(progress, field.name), tuple) else value
            for field in fields(GateProgress)}


def progress_from_dict(data: Any) -> GateProgress:
    """Read a persisted progress; ValueError when it is not a mapping, a field is missing, or a
    numeric field is not a finite number (a list comes back as the tuple it was). Fields this
    version does not know are ignored."""
    if not isinstance(data, dict):
        raise ValueError(f"gate progress is not a mapping: {data!r}")
    values = {}
    for field in fields(GateProgress):
        if field.name not in data:
            raise ValueError(f"gate progress lacks {field.name!r}")
        value = data[field.name]
        if isinstance(field.default, (int, float)) and not isinstance(field.default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"gate progress field {field.name} is not a finite number: {value!r}")
            value = float(value) if isinstance(field.default, float) else int(value)
        elif isinstance(value, list):
            value = tuple(value)
        values[field.name] = value
    return GateProgress(**values)


def resumed_progress(saved: GateProgress, elapsed_seconds: float, window_seconds: int) -> GateProgress:
    """A restarted gate's progress: every count kept (a pending breach is not forgotten, healthy time
    already judged still counts), but its next PASS credits at most the window that PASS judges,
    exactly like a fresh gate: time the gate was down and did not judge is never credited."""
    return replace(saved, last_elapsed_seconds=max(saved.last_elapsed_seconds,
                                                   initial_credit_start(elapsed_seconds, window_seconds)))


def hold_outside_change_windows(
    decision: GateDecision, windows: ChangeWindows | None, now: datetime, step_label: str
) -> tuple[GateDecision, str | None]:
    """The gate's decision with change windows applied: a step that would be promoted outside every
    window holds (CONTINUE: the gate keeps judging, so a breach during the hold still halts at
    once); HALT and TIMEOUT, the ways back to blue, are never held. The line says why it holds
    and when it may advance (None when nothing is held)."""
    if decision is not GateDecision.PROMOTE:
        return decision, None
    advance = decide_advance(windows, now)
    if advance.allowed:
        return decision, None
    return GateDecision.CONTINUE, f"Hold at {step_label}: baked, but {advance.reason}"
