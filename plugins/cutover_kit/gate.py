"""The SLO gate as a pure state machine: one judgement per poll in, a decision out.

The deferrable trigger only measures and calls :func:`advance_gate`; every rule about when to
promote, halt or give up lives here and is tested without Airflow or Prometheus.

- HALT after ``consecutive_breaches`` FAIL verdicts in a row (one noisy poll does not roll back).
- PROMOTE once the bake time has elapsed *and* the latest verdict is PASS.
- INCONCLUSIVE polls (too little data, Prometheus silent or unreachable) hold the step; when the
  step timeout passes while still not healthy the gate gives up: TIMEOUT, which the DAG treats
  like a halt. Missing data never promotes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

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


def advance_gate(
    progress: GateProgress,
    judgement: Judgement,
    elapsed_seconds: float,
    *,
    bake_seconds: float,
    step_timeout_seconds: float,
    consecutive_breach_limit: int,
) -> tuple[GateProgress, GateDecision]:
    failed = judgement.verdict is Verdict.FAIL
    progress = GateProgress(
        polls=progress.polls + 1,
        consecutive_breaches=progress.consecutive_breaches + 1 if failed else 0,
        passes=progress.passes + (judgement.verdict is Verdict.PASS),
        fails=progress.fails + failed,
        inconclusives=progress.inconclusives + (judgement.verdict is Verdict.INCONCLUSIVE),
    )
    if progress.consecutive_breaches >= consecutive_breach_limit:
        return progress, GateDecision.HALT
    if elapsed_seconds >= bake_seconds and judgement.verdict is Verdict.PASS:
        return progress, GateDecision.PROMOTE
    if elapsed_seconds >= step_timeout_seconds:
        return progress, GateDecision.TIMEOUT
    return progress, GateDecision.CONTINUE


def judging_window_seconds(elapsed_seconds: float, window_seconds: int) -> int:
    """The trailing window to query: never longer than the time since the step began (so data
    from the previous step does not leak into this one), never shorter than 2 s (two 1 s scrapes)."""
    return max(2, min(window_seconds, math.ceil(elapsed_seconds)))


def decision_line(decision: GateDecision, step_label: str, judgement: Judgement, progress: GateProgress) -> str:
    """One readable log line per decision, e.g. 'Halt at 25 %: green 5xx 3.2 % > 1.0 % ...'."""
    if decision is GateDecision.HALT:
        return f"Halt at {step_label}: {judgement.reason} ({progress.consecutive_breaches} breaches in a row)"
    if decision is GateDecision.PROMOTE:
        return f"Promote past {step_label}: {judgement.reason} ({progress.passes}/{progress.polls} polls healthy)"
    if decision is GateDecision.TIMEOUT:
        return f"Give up at {step_label}: step timeout with no healthy verdict; last: {judgement.reason}"
    return f"Hold at {step_label}: {judgement.verdict.value} {judgement.reason}"
