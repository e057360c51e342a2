"""The knee of one color: the highest request rate at which p95 and the error ratio stay within
the SLO, with the per-step evidence. Pure.

Steps are read in load order and the first step that breaks the SLO ends the search: past it
the app has shown its limit, and a later step that happens to pass does not raise the knee.
A step without requests says nothing and is skipped. When no step breaks the SLO the knee is
the highest rate measured and `saturated` is False: the app can do at least that much.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cutover_kit.load.history import StepFigures


@dataclass(frozen=True)
class LoadSLO:
    max_p95_ms: float
    max_error_ratio: float

    def __post_init__(self) -> None:
        if self.max_p95_ms <= 0:
            raise ValueError(f"max_p95_ms must be > 0, got {self.max_p95_ms}")
        if not 0 <= self.max_error_ratio < 1:
            raise ValueError(f"max_error_ratio must be in [0, 1), got {self.max_error_ratio}")


@dataclass(frozen=True)
class Knee:
    knee_rps: float
    step_index: int | None
    p95_ms: float | None
    error_ratio: float | None
    saturated: bool
    reason: str
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def step_breach(step: StepFigures, slo: LoadSLO) -> str | None:
    """Why `step` breaks the SLO, or None when it stays within."""
    if step.error_ratio is not None and step.error_ratio > slo.max_error_ratio:
        return f"errors {step.error_ratio:.1%} > {slo.max_error_ratio:.1%}"
    if step.p95_ms is None or step.p95_ms > slo.max_p95_ms:
        return f"p95 {step.p95_ms} ms > {slo.max_p95_ms:g} ms"
    return None


def find_knee(steps: list[StepFigures], slo: LoadSLO) -> Knee:
    evidence, best, breach = [], None, None
    for step in steps:
        if step.requests == 0:
            evidence.append({**step.as_dict(), "within_slo": None, "note": "no requests"})
            continue
        why = step_breach(step, slo)
        evidence.append({**step.as_dict(), "within_slo": why is None, **({"breach": why} if why else {})})
        if why is not None:
            breach = (step, why)
            break
        if best is None or step.rate_rps > best.rate_rps:
            best = step
    if best is None:
        reason = (f"no step within the SLO: step {breach[0].index} ({breach[0].users} users, {breach[0].rate_rps:g} rps) {breach[1]}"
                  if breach else "no step served any request")
        return Knee(0.0, None, None, None, breach is not None, reason, evidence)
    if breach:
        reason = (f"knee {best.rate_rps:g} rps at {best.users} users (p95 {best.p95_ms:g} ms, errors {best.error_ratio:.1%});"
                  f" step {breach[0].index} at {breach[0].rate_rps:g} rps: {breach[1]}")
    else:
        reason = f"no knee reached: {best.rate_rps:g} rps at {best.users} users within the SLO (p95 {best.p95_ms:g} ms)"
    return Knee(best.rate_rps, best.index, best.p95_ms, best.error_ratio, breach is not None, reason, evidence)


def p95_at_rate(steps: list[StepFigures], rate_rps: float) -> float | None:
    """p95 of the lightest step that reached `rate_rps` (None when no step did)."""
    reached = [step for step in steps if step.requests and step.rate_rps >= rate_rps and step.p95_ms is not None]
    return min(reached, key=lambda step: step.rate_rps).p95_ms if reached else None
