"""The validated plan (:class:`CutoverPlan`, :class:`SLOPolicy`) and the stages a plan runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cutover_kit.promql import MetricTemplates
from cutover_kit.plan.schema import (
    OPTIONAL_FIELD_DEFAULTS,
    PLAN_DICT_VALIDATOR,
    PLAN_PROPERTIES,
    SLO_VALIDATOR,
    PlanError,
    as_json_document,
    describe_schema_errors,
    refuse_invalid_plan,
)

TRAFFIC_STAGE_PREFIX = "traffic_"
STANDBY_STAGE = "standby"
_INTEGER_FIELDS = tuple(
    name for name, spec in PLAN_PROPERTIES.items() if spec["type"] == "integer"
)


@dataclass(frozen=True)
class SLOPolicy:
    """What green must satisfy in every window, judged against live blue in the same window."""

    max_error_ratio: float = 0.01
    max_error_ratio_delta_vs_blue: float = 0.005
    max_latency_ratio_vs_blue: float = 1.5
    # Looser than green's limit, and on p95 only: blue is compared with a baseline from another
    # window (not the same one), so CPU noise on a small machine must not read as a regression.
    max_blue_regression_ratio: float = 2.0
    latency_floor_seconds: float = 0.05
    quantiles: tuple[float, ...] = (0.95, 0.99)
    confidence_z: float = 1.96

    def __post_init__(self) -> None:
        raw = {f.name: as_json_document(getattr(self, f.name)) for f in fields(self)}
        problems = describe_schema_errors(SLO_VALIDATOR, raw)
        if problems:
            raise PlanError("slo: " + "; ".join(problems))
        # Normalise YAML/JSON ints to floats so equal policies compare and serialise equal.
        for f in fields(self):
            value = getattr(self, f.name)
            normalised = tuple(float(q) for q in value) if f.name == "quantiles" else float(value)
            object.__setattr__(self, f.name, normalised)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: as_json_document(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class CutoverPlan:
    """A validated plan; constructing one with invalid values raises PlanError."""

    name: str
    steps: tuple[int, ...]
    bake_seconds: int
    step_timeout_seconds: int
    poll_interval_seconds: float
    window_seconds: int
    min_requests: int
    consecutive_breaches: int
    standby_seconds: int
    rollback_drill_percent: int
    baseline_seconds: int
    slo: SLOPolicy
    #: The per-color PromQL every measurement of this plan runs (cutover_kit.promql).
    metrics: MetricTemplates
    flag_backend: str = OPTIONAL_FIELD_DEFAULTS["flag_backend"]
    #: The shipped template set `metrics` came from; None when the plan wrote its own.
    metric_templates: str | None = OPTIONAL_FIELD_DEFAULTS["metric_templates"]
    #: Stage 6's step load, knee SLO and capacity plan (schema.LOAD_TEST_SCHEMA); None: stage 6 fails.
    load_test: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.slo, SLOPolicy):
            raise PlanError(f"plan {self.name!r}: slo must be an SLOPolicy; got {self.slo!r}")
        if not isinstance(self.metrics, (MetricTemplates, Mapping)):
            raise PlanError(f"plan {self.name!r}: metrics must be MetricTemplates; got {type(self.metrics).__name__}")
        raw = {f.name: as_json_document(getattr(self, f.name)) for f in fields(self) if f.name != "metrics"}
        raw["slo"] = self.slo.to_dict()
        # A mapping is the dict form's {blue: ..., green: ...}: schema-checked here, then built.
        raw["metrics"] = self.metrics.to_dict() if isinstance(self.metrics, MetricTemplates) else as_json_document(self.metrics)
        refuse_invalid_plan(raw, PLAN_DICT_VALIDATOR, f"plan {self.name!r}")
        if isinstance(self.metrics, Mapping):
            try:
                object.__setattr__(self, "metrics", MetricTemplates(raw["metrics"], self.metric_templates))
            except ValueError as error:
                raise PlanError(f"plan {self.name!r}: {error}") from error
        # JSON schema accepts 300.0 as an integer; store real ints so to_dict() round-trips.
        object.__setattr__(self, "steps", tuple(int(step) for step in self.steps))
        for name in _INTEGER_FIELDS:
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "poll_interval_seconds", float(self.poll_interval_seconds))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists, not tuples), used as XCom; CutoverPlan.from_dict inverts it."""
        document = {f.name: as_json_document(getattr(self, f.name)) for f in fields(self) if f.name != "metrics"}
        document["slo"] = self.slo.to_dict()
        document["metrics"] = self.metrics.to_dict()
        return document

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CutoverPlan:
        """Validate and build a plan from its dict form (to_dict output, e.g. from XCom)."""
        if not isinstance(d, Mapping):
            raise PlanError(f"plan: expected a mapping; got {type(d).__name__}")
        document = as_json_document(d)
        refuse_invalid_plan(document, PLAN_DICT_VALIDATOR, f"plan {document.get('name')!r}")
        return build_plan(document["name"], document)


def build_plan(name: str, document: Mapping[str, Any]) -> CutoverPlan:
    """Build from a schema-valid document whose `metrics` holds the resolved templates (the dict
    form, or a file form after the loader resolved its `metric_templates`)."""
    plan_fields = {key: document.get(key, OPTIONAL_FIELD_DEFAULTS.get(key)) for key in PLAN_PROPERTIES}
    try:
        metrics = MetricTemplates(document["metrics"], plan_fields["metric_templates"])
    except ValueError as error:
        raise PlanError(f"plan {name!r}: {error}") from error
    return CutoverPlan(name=name, slo=SLOPolicy(**document.get("slo", {})), metrics=metrics, **plan_fields)


def stage_names(plan: CutoverPlan) -> list[str]:
    """One stage per traffic step, then standby: ["traffic_5", ..., "traffic_100", "standby"]."""
    return [f"{TRAFFIC_STAGE_PREFIX}{step}" for step in plan.steps] + [STANDBY_STAGE]


def green_percent_of_stage(stage: str) -> int:
    """Percent of traffic on green during a stage: traffic_25 -> 25, standby -> 100."""
    if stage == STANDBY_STAGE:
        return 100
    if isinstance(stage, str) and stage.startswith(TRAFFIC_STAGE_PREFIX):
        percent = stage.removeprefix(TRAFFIC_STAGE_PREFIX)
        if percent.isdigit() and 1 <= int(percent) <= 100:
            return int(percent)
    raise PlanError(f"stage {stage!r} is not traffic_<1..100> or {STANDBY_STAGE}")


def shortest_promotion_seconds(plan: CutoverPlan) -> int:
    """Lower bound on a run that promotes: baseline, one bake per step, then standby."""
    return plan.baseline_seconds + len(plan.steps) * plan.bake_seconds + plan.standby_seconds
