"""The post-launch run record: what one cutover run recorded, as plain frozen dataclasses.

Built from the run's XComs by :func:`cutover_kit.report.collect.build_run_record`, rendered by
:mod:`cutover_kit.report.render`. Pure: no Airflow, no I/O. Times are epoch seconds (UTC), as the
tasks and the gate trigger record them; a field the run did not record is ``None``, never guessed.
``to_dict`` / ``from_dict`` round-trip through JSON (the record is saved beside the report).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

COLORS = ("blue", "green")


def format_duration(seconds: float | None) -> str:
    """A timing for people: milliseconds under a second (a drill takes 0.4 ms), else seconds."""
    if seconds is None:
        return "not recorded"
    return f"{seconds * 1000:.1f} ms" if abs(seconds) < 1 else f"{seconds:.3f} s"
#: Measures of the metric series, in the order the report shows them.
ERROR_RATIO = "error_ratio"
TRAFFIC_SHARE = "traffic_share"
LATENCY_MEASURES = ("p50", "p95", "p99")
SERIES_MEASURES = (TRAFFIC_SHARE, ERROR_RATIO, *LATENCY_MEASURES)


@dataclass(frozen=True)
class StageOutcome:
    """One task of the run: its final state and, when it returned one, its verdict and reason."""

    task_id: str
    state: str | None
    verdict: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class GateRecord:
    """One SLO gate's decision, from the trigger's event (XCom ``gate_result``)."""

    step: str
    status: str  # "success" (promote) | "failed" (halt) | "inconclusive" (gave up)
    verdict: str | None
    line: str
    reason: str
    decided_at: float | None
    elapsed_seconds: float | None
    polls: int | None
    #: The last judged window: {"window_seconds", "green": ColorWindow dict, "blue": ...} or {}.
    measurements: dict[str, Any] = field(default_factory=dict)
    weights_set_at: float | None = None

    @property
    def started_at(self) -> float | None:
        if self.decided_at is None or self.elapsed_seconds is None:
            return None
        return self.decided_at - self.elapsed_seconds

    @property
    def detection_seconds(self) -> float | None:
        """From the step's weights to the gate's decision (a halt's time to detect)."""
        if self.decided_at is None or self.weights_set_at is None:
            return None
        return self.decided_at - self.weights_set_at


@dataclass(frozen=True)
class WeightChange:
    """Green's share of the router's weights from ``at`` on, and which task set it."""

    at: float
    green_percent: float
    source: str


@dataclass(frozen=True)
class DrillRecord:
    """Stage 8's rollback drill (no timestamps are recorded, only its duration)."""

    verdict: str | None
    reason: str
    rollback_seconds: float | None


@dataclass(frozen=True)
class RollbackRecord:
    """Why the run halted and how long each rollback level took after the decision."""

    step: str
    reason: str
    decided_at: float | None
    flags_restored_at: float | None = None
    traffic_restored_at: float | None = None
    route_verified_at: float | None = None
    verified: bool | None = None
    emergency_stop: str | None = None

    def _after(self, at: float | None) -> float | None:
        return None if at is None or self.decided_at is None else at - self.decided_at

    @property
    def flags_seconds(self) -> float | None:
        return self._after(self.flags_restored_at)

    @property
    def traffic_seconds(self) -> float | None:
        """The reflex's verified flip when the gate did it, else the rollback task's read-back."""
        return self._after(self.traffic_restored_at if self.traffic_restored_at is not None else self.route_verified_at)


@dataclass(frozen=True)
class DataValidation:
    """Stage 2's Great Expectations run, passed or failed."""

    expectations: int | None
    failed: int | None
    seconds: float | None = None
    failed_names: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Series:
    """One measure of one color over the run: (epoch seconds, value) points in time order.
    error_ratio and traffic_share are fractions (0..1); p50/p95/p99 are seconds."""

    measure: str
    color: str
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if self.measure not in SERIES_MEASURES:
            raise ValueError(f"series measure {self.measure!r} is not one of {SERIES_MEASURES}")
        if self.color not in COLORS:
            raise ValueError(f"series color {self.color!r} is not one of {COLORS}")
        object.__setattr__(self, "points", tuple(sorted((float(t), float(v)) for t, v in self.points)))


@dataclass(frozen=True)
class RunRecord:
    dag_id: str
    run_id: str
    started_at: float | None
    ended_at: float | None
    outcome: str | None  # promoted | rolled_back | failed; None while unknown
    outcome_reason: str
    plan: dict[str, Any] | None = None
    stages: tuple[StageOutcome, ...] = ()
    gates: tuple[GateRecord, ...] = ()
    weights: tuple[WeightChange, ...] = ()
    drill: DrillRecord | None = None
    rollback: RollbackRecord | None = None
    data_validation: DataValidation | None = None
    series: tuple[Series, ...] = ()
    #: Why the metric series are missing or partial (Prometheus unreachable, no templates...).
    series_note: str | None = None
    #: Stage 6's load_test block / stage 7's security verdict: only when a run recorded them.
    load_test: dict[str, Any] | None = None
    security: dict[str, Any] | None = None

    def series_of(self, measure: str, color: str) -> tuple[tuple[float, float], ...]:
        return next((s.points for s in self.series if s.measure == measure and s.color == color), ())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["series"] = [{"measure": s.measure, "color": s.color, "points": [list(p) for p in s.points]}
                          for s in self.series]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        def build(kind: type, value: Any) -> Any:
            if value is None:
                return None
            names = {f.name for f in fields(kind)}
            unknown = sorted(set(value) - names)
            if unknown:
                raise ValueError(f"{kind.__name__}: unknown field(s) {', '.join(unknown)}")
            return kind(**{k: tuple(v) if isinstance(v, list) and k in ("failed_names", "lines") else v
                           for k, v in value.items()})

        plain = {f.name: data.get(f.name) for f in fields(cls)}
        plain["stages"] = tuple(build(StageOutcome, s) for s in data.get("stages") or ())
        plain["gates"] = tuple(build(GateRecord, g) for g in data.get("gates") or ())
        plain["weights"] = tuple(build(WeightChange, w) for w in data.get("weights") or ())
        plain["drill"] = build(DrillRecord, data.get("drill"))
        plain["rollback"] = build(RollbackRecord, data.get("rollback"))
        plain["data_validation"] = build(DataValidation, data.get("data_validation"))
        plain["series"] = tuple(Series(s["measure"], s["color"], tuple(tuple(p) for p in s["points"]))
                                for s in data.get("series") or ())
        plain["outcome_reason"] = plain["outcome_reason"] or ""
        return cls(**plain)
