"""The stage-6 capacity judge: both colors' knees and p95 at the planned load in, a verdict with a
one-line reason out. Pure.

Green passes when (1) its knee is at least blue's minus `knee_tolerance`, (2) its knee is at least
`peak_rps` x `headroom`, and (3) its p95 at `peak_rps` is within `max_latency_ratio_vs_blue` x blue's
(a p95 under `latency_floor_ms` always passes: 2 ms vs 4 ms is no regression). The first rule that
fails names the halt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cutover_kit.load.knee import Knee, p95_at_rate
from cutover_kit.load.stress import recovery_halt

PASS = "pass"
HALT = "halt"


@dataclass(frozen=True)
class CapacityPlan:
    peak_rps: float
    headroom: float
    knee_tolerance: float = 0.10
    max_latency_ratio_vs_blue: float = 1.5
    latency_floor_ms: float = 50.0

    def __post_init__(self) -> None:
        for name in ("peak_rps", "max_latency_ratio_vs_blue"):
            if getattr(self, name) <= 0:
                raise ValueError(f"capacity.{name} must be > 0, got {getattr(self, name)}")
        if self.headroom < 1:
            raise ValueError(f"capacity.headroom must be >= 1 (a multiple of the peak), got {self.headroom}")
        if not 0 <= self.knee_tolerance < 1:
            raise ValueError(f"capacity.knee_tolerance must be in [0, 1), got {self.knee_tolerance}")
        if self.latency_floor_ms < 0:
            raise ValueError(f"capacity.latency_floor_ms must be >= 0, got {self.latency_floor_ms}")

    @property
    def required_rps(self) -> float:
        return self.peak_rps * self.headroom


@dataclass(frozen=True)
class CapacityVerdict:
    verdict: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_capacity(blue: Knee, green: Knee, blue_p95_at_peak_ms: float | None, green_p95_at_peak_ms: float | None,
                   plan: CapacityPlan) -> CapacityVerdict:
    floor = blue.knee_rps * (1 - plan.knee_tolerance)
    if green.knee_rps < floor:
        return CapacityVerdict(HALT, f"Halt before traffic: green knee {green.knee_rps:g} rps < blue {blue.knee_rps:g} rps"
                                     f" - {plan.knee_tolerance:.0%} ({floor:.4g} rps)")
    if green.knee_rps < plan.required_rps:
        return CapacityVerdict(HALT, f"Halt before traffic: green knee {green.knee_rps:g} rps < peak {plan.peak_rps:g} rps"
                                     f" x headroom {plan.headroom:g} ({plan.required_rps:.4g} rps)")
    if green_p95_at_peak_ms is None:
        return CapacityVerdict(HALT, f"Halt before traffic: green never reached the planned {plan.peak_rps:g} rps, no p95 there")
    if blue_p95_at_peak_ms is None:
        return CapacityVerdict(HALT, f"Halt before traffic: blue never reached the planned {plan.peak_rps:g} rps:"
                                     " no reference p95 to compare green with")
    limit = blue_p95_at_peak_ms * plan.max_latency_ratio_vs_blue
    if green_p95_at_peak_ms > max(limit, plan.latency_floor_ms):
        return CapacityVerdict(HALT, f"Halt before traffic: green p95 {green_p95_at_peak_ms:g} ms at {plan.peak_rps:g} rps"
                                     f" > {plan.max_latency_ratio_vs_blue:g} x blue's {blue_p95_at_peak_ms:g} ms")
    return CapacityVerdict(PASS, f"Capacity ok: green knee {green.knee_rps:g} rps (blue {blue.knee_rps:g}, required"
                                 f" {plan.required_rps:.4g}); p95 at {plan.peak_rps:g} rps {green_p95_at_peak_ms:g} ms"
                                 f" vs blue {blue_p95_at_peak_ms:g} ms")


def load_test_summary(steps_by_color: dict[str, list], knees: dict[str, Knee], plan: CapacityPlan,
                      stress_blocks: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The `load_test` block of rehearsal-result.json / XCom: each color's knee and p95 at the
    planned peak, the verdict and its reason. With `stress_blocks` (cutover_kit.load.stress.
    stress_block per color) each color also gets `stress`, `recovered`, `recovery_seconds` and
    `recovery`; a capacity pass then still halts when green did not recover and blue did."""

    p95_at_peak = {color: p95_at_rate(steps_by_color[color], plan.peak_rps) for color in ("blue", "green")}
    verdict = judge_capacity(knees["blue"], knees["green"], p95_at_peak["blue"], p95_at_peak["green"], plan)
    summary: dict[str, Any] = {
        color: {"knee_rps": knees[color].knee_rps, "p95_at_knee_ms": knees[color].p95_ms,
                "p95_at_peak_ms": p95_at_peak[color], "saturated": knees[color].saturated,
                "knee_reason": knees[color].reason, "steps": [step.as_dict() for step in steps_by_color[color]]}
        for color in ("blue", "green")
    }
    summary["plan"] = {**asdict(plan), "required_rps": plan.required_rps}
    if stress_blocks is not None:
        for color in ("blue", "green"):
            summary[color].update(stress_blocks[color])
        halt = recovery_halt(stress_blocks)
        if verdict.verdict == PASS and halt:
            verdict = CapacityVerdict(HALT, halt)
        elif not halt and not any(block["recovered"] for block in stress_blocks.values()):
            summary["stress_finding"] = ("neither color recovered from stress (green no worse than blue, not a halt): "
                                         + "; ".join(f"{c} {stress_blocks[c]['recovery']['description']}" for c in ("blue", "green")))
    summary.update(verdict.as_dict())
    return summary
