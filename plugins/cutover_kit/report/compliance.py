"""SLO compliance of green against blue, per traffic step, looked back at over the metric series.
Pure.

A step lasts from the weights that gave green its share to the next change of that share (the
next step, a rollback) or the end of the run: a step that a smoke check halted before its gate
judged anything is a step too. For every instant of a step where green's error
ratio is known, green complies when its error ratio is within the plan's ceiling, within the
allowed difference from blue's at the same instant, and its p95 is within the plan's ratio of
blue's p95 (latencies under the plan's floor always comply, as in the gate). Blue complies with
its own ceiling. These are point estimates over range-query windows, not the gate's statistics
(Wilson bounds, minimum requests, consecutive breaches): the gate's decision stays authoritative,
this shows how the step looked from the outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cutover_kit.report.record import ERROR_RATIO, RunRecord
from cutover_kit.report.series import points_between

DEFAULT_SLO = {"max_error_ratio": 0.01, "max_error_ratio_delta_vs_blue": 0.005, "max_latency_ratio_vs_blue": 1.5,
               "latency_floor_seconds": 0.05}


@dataclass(frozen=True)
class StepCompliance:
    step: str
    gate_status: str
    samples: int
    green_compliant: int
    blue_compliant: int
    blue_samples: int

    @property
    def green_percent(self) -> float | None:
        return None if not self.samples else 100.0 * self.green_compliant / self.samples

    @property
    def blue_percent(self) -> float | None:
        return None if not self.blue_samples else 100.0 * self.blue_compliant / self.blue_samples


def slo_policy(record: RunRecord) -> dict[str, float]:
    """The plan's SLO fields the comparison needs (the plan's defaults when the plan is missing)."""
    slo = ((record.plan or {}).get("slo") or {})
    return {key: float(slo.get(key, default)) for key, default in DEFAULT_SLO.items()}


def green_complies(err_g: float, err_b: float | None, p95_g: float | None, p95_b: float | None,
                   slo: dict[str, float]) -> bool:
    if err_g > slo["max_error_ratio"]:
        return False
    if err_b is not None and err_g - err_b > slo["max_error_ratio_delta_vs_blue"]:
        return False
    if p95_g is not None and p95_b is not None and p95_g > slo["latency_floor_seconds"]:
        return p95_g <= slo["max_latency_ratio_vs_blue"] * max(p95_b, 1e-9)
    return True


def step_intervals(record: RunRecord) -> list[tuple[str, float, float | None]]:
    """(label, start, end) of every traffic step: from a change of green's share to a non-zero
    value until the next change (None: until the run's end). Repeated changes to the share in
    force are one step."""
    changes = []
    for change in sorted(record.weights, key=lambda c: c.at):
        if not changes or changes[-1][1] != change.green_percent:
            changes.append((change.at, change.green_percent))
    intervals = []
    for index, (at, percent) in enumerate(changes):
        if percent > 0:
            end = changes[index + 1][0] if index + 1 < len(changes) else record.ended_at
            intervals.append((f"{percent:g} %", at, end))
    return intervals


def step_status(record: RunRecord, label: str) -> str:
    """The step's gate decision, else why no gate decided (halted by something else, never judged)."""
    gate = next((g for g in record.gates if g.step == label), None)
    if gate is not None:
        return gate.status
    if record.rollback is not None and record.rollback.step == label:
        return "halted before its gate decided"
    return "no gate decision"


def step_compliance(record: RunRecord, label: str, start: float, end: float | None) -> StepCompliance:
    slo = slo_policy(record)
    window = (start, end)

    def during(measure: str, color: str) -> dict[float, float]:
        return dict(points_between(record.series_of(measure, color), *window))

    err_g, err_b = during(ERROR_RATIO, "green"), during(ERROR_RATIO, "blue")
    p95_g, p95_b = during("p95", "green"), during("p95", "blue")
    green_ok = sum(green_complies(v, err_b.get(t), p95_g.get(t), p95_b.get(t), slo) for t, v in err_g.items())
    blue_ok = sum(v <= slo["max_error_ratio"] for v in err_b.values())
    return StepCompliance(label, step_status(record, label), len(err_g), green_ok, blue_ok, len(err_b))


def compliance_by_step(record: RunRecord) -> list[StepCompliance]:
    """One row per traffic step, in run order."""
    return [step_compliance(record, label, start, end) for label, start, end in step_intervals(record)]


def as_rows(rows: list[StepCompliance]) -> list[dict[str, Any]]:
    return [{"step": row.step, "gate": row.gate_status, "samples": row.samples,
             "green_percent": row.green_percent, "blue_percent": row.blue_percent} for row in rows]
