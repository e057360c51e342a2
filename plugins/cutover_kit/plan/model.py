"""The validated plan (:class:`CutoverPlan`, :class:`SLOPolicy`) and the stages a plan runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cutover_kit.approvals import ApprovalPolicy
from cutover_kit.change_windows import ChangeWindows
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
# Fields of CutoverPlan that are not plan-file keys: derived from `steps`, never in the dict form.
_DERIVED_FIELDS = ("traffic_steps",)


@dataclass(frozen=True)
class TrafficStep:
    """One traffic step: green's percent, the cohorts that join green at it, its own bake (None =
    the plan's bake_seconds). Written in a plan as 5 or {percent: 5, cohorts: [beta], bake_seconds: 86400}."""

    percent: int
    cohorts: tuple[str, ...] = ()
    bake_seconds: int | None = None

    @classmethod
    def parse(cls, step: Any) -> TrafficStep:
        """From either plan form (assumed schema-valid), or a TrafficStep."""
        if isinstance(step, TrafficStep):
            return step
        if isinstance(step, Mapping):
            bake = step.get("bake_seconds")
            return cls(int(step["percent"]), tuple(step.get("cohorts", ())), None if bake is None else int(bake))
        return cls(int(step))

    def to_document(self) -> int | dict[str, Any]:
        """The plan form: a plain percent unless the step names cohorts or its own bake."""
        if not self.cohorts and self.bake_seconds is None:
            return self.percent
        document: dict[str, Any] = {"percent": self.percent}
        if self.cohorts:
            document["cohorts"] = list(self.cohorts)
        if self.bake_seconds is not None:
            document["bake_seconds"] = self.bake_seconds
        return document


@dataclass(frozen=True)
class CohortSource:
    """Where a cohort's members come from: a SQL query on the application database, or a file
    under include/ (exactly one)."""

    name: str
    sql: str | None = None
    file: str | None = None

    def to_document(self) -> dict[str, str]:
        return {"sql": self.sql} if self.sql is not None else {"file": str(self.file)}


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
    # The rest of the "monitor closely" list (schema.WHOLE_LIST_LIMITS, judged by cutover_kit.vitals):
    # None = measured and reported every poll, never judged.
    min_throughput_ratio_vs_blue: float | None = None
    min_job_rate_ratio_vs_blue: float | None = None
    max_job_failure_ratio_delta_vs_blue: float | None = None
    min_websocket_ratio_vs_blue: float | None = None
    max_memory_ratio_vs_blue: float | None = None
    max_cpu_per_request_ratio_vs_blue: float | None = None
    max_db_statement_time_ratio_vs_blue: float | None = None

    def __post_init__(self) -> None:
        raw = {f.name: as_json_document(getattr(self, f.name)) for f in fields(self)}
        problems = describe_schema_errors(SLO_VALIDATOR, raw)
        if problems:
            raise PlanError("slo: " + "; ".join(problems))
        # Normalise YAML/JSON ints to floats so equal policies compare and serialise equal.
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:  # an unset whole-list limit stays unset
                continue
            normalised = tuple(float(q) for q in value) if f.name == "quantiles" else float(value)
            object.__setattr__(self, f.name, normalised)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: as_json_document(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class CutoverPlan:
    """A validated plan; constructing one with invalid values raises PlanError."""

    name: str
    #: Percent on green at each step. Given in any plan form (5, {percent: 5, cohorts: [...]}, a
    #: TrafficStep); always stored as the plain percents (the full steps are `traffic_steps`).
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
    #: What splits traffic: "haproxy" or "gateway_api" (cutover_kit.routing.ROUTERS).
    router: str = OPTIONAL_FIELD_DEFAULTS["router"]
    #: The HTTPRoute of the gateway_api router ({namespace, http_route, blue_backend, green_backend,
    #: kubernetes_conn_id?}); None with the haproxy router.
    gateway_api: Mapping[str, str] | None = OPTIONAL_FIELD_DEFAULTS["gateway_api"]
    #: Cohort sources by name ({name: {sql: ...} | {file: ...}} in a plan), kept as CohortSource.
    cohorts: tuple[CohortSource, ...] = ()
    #: When steps may advance; None = whenever the gate passes.
    change_windows: ChangeWindows | None = OPTIONAL_FIELD_DEFAULTS["change_windows"]
    #: Go/no-go approvals before big steps (cutover_kit.approvals); None = no step waits for a person.
    approvals: ApprovalPolicy | None = OPTIONAL_FIELD_DEFAULTS["approvals"]
    #: `steps` in full (cohorts, own bake). Derived from `steps` when empty; `steps` always holds the
    #: plain percents, so the DAG's shape and every existing reader of `steps` stay as they were.
    traffic_steps: tuple[TrafficStep, ...] = ()
    #: Stage 6's step load, knee SLO and capacity plan (schema.LOAD_TEST_SCHEMA); None: stage 6 fails.
    load_test: Mapping[str, Any] | None = field(default=None, hash=False)
    #: Stage 7's blocking severity, scanners and bounds (schema.SECURITY_SCHEMA); None: stage 7 fails.
    security: Mapping[str, Any] | None = field(default=None, hash=False)
    #: New exception types on green as a gate input (cutover_kit.error_tracking); None: report only, defaults.
    error_tracking: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.slo, SLOPolicy):
            raise PlanError(f"plan {self.name!r}: slo must be an SLOPolicy; got {self.slo!r}")
        if not isinstance(self.metrics, (MetricTemplates, Mapping)):
            raise PlanError(f"plan {self.name!r}: metrics must be MetricTemplates; got {type(self.metrics).__name__}")
        self._merge_traffic_steps()
        raw = {f.name: as_json_document(getattr(self, f.name)) for f in fields(self)
               if f.name not in ("metrics", "steps", "cohorts", "change_windows", "approvals", *_DERIVED_FIELDS)}
        raw["approvals"] = (self.approvals.to_dict() if isinstance(self.approvals, ApprovalPolicy)
                            else as_json_document(self.approvals))
        raw["steps"] = [step.to_document() if isinstance(step, TrafficStep) else as_json_document(step)
                        for step in self.steps]
        raw["cohorts"] = _cohorts_document(self.cohorts)
        raw["change_windows"] = (self.change_windows.to_dict() if isinstance(self.change_windows, ChangeWindows)
                                 else as_json_document(self.change_windows))
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
        traffic_steps = tuple(TrafficStep.parse(step) for step in raw["steps"])
        object.__setattr__(self, "traffic_steps", traffic_steps)
        object.__setattr__(self, "steps", tuple(step.percent for step in traffic_steps))
        object.__setattr__(self, "cohorts", tuple(
            CohortSource(name, source.get("sql"), source.get("file")) for name, source in raw["cohorts"].items()))
        if raw["change_windows"] is not None:
            object.__setattr__(self, "change_windows", ChangeWindows.from_dict(raw["change_windows"]))
        if raw["approvals"] is not None:
            object.__setattr__(self, "approvals", ApprovalPolicy.from_dict(raw["approvals"]))
        for name in _INTEGER_FIELDS:
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "poll_interval_seconds", float(self.poll_interval_seconds))

    def _merge_traffic_steps(self) -> None:
        """Reconcile `steps` with a given `traffic_steps` (what dataclasses.replace passes back):
        plain percents equal to traffic_steps' take their cohorts and bakes back, so a replaced plan
        keeps them; anything else replaces them, unless that would silently drop cohorts or bakes."""
        full = self.traffic_steps
        if not full:
            return
        percents = [step.percent for step in full]
        plain = all(isinstance(step, int) and not isinstance(step, bool) for step in self.steps)
        if plain and list(self.steps) == percents:
            object.__setattr__(self, "steps", tuple(full))
        elif any(step.cohorts or step.bake_seconds is not None for step in full):
            raise PlanError(f"plan {self.name!r}: new steps {as_json_document(self.steps)} would drop the cohorts and "
                            f"bakes of traffic_steps {[step.to_document() for step in full]}; pass traffic_steps=() too")

    @property
    def cohort_names(self) -> tuple[str, ...]:
        return tuple(source.name for source in self.cohorts)

    def traffic_step(self, percent: int) -> TrafficStep:
        """The step at `percent`; PlanError if the plan has none."""
        for step in self.traffic_steps:
            if step.percent == percent:
                return step
        raise PlanError(f"plan {self.name!r} has no {percent} % step (steps: {list(self.steps)})")

    def bake_seconds_for(self, percent: int) -> int:
        """Seconds of clean verdicts the step at `percent` needs: its own bake, else the plan's."""
        own = self.traffic_step(percent).bake_seconds
        return self.bake_seconds if own is None else own

    def step_timeout_seconds_for(self, percent: int) -> int:
        """When the step at `percent` rolls back unbaked: its bake plus the plan's slack
        (step_timeout_seconds - bake_seconds), so a day-long step keeps the same room for
        "not enough data" windows as a five-minute one."""
        return self.bake_seconds_for(percent) + self.step_timeout_seconds - self.bake_seconds

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists, not tuples), used as XCom; CutoverPlan.from_dict inverts it."""
        document = {f.name: as_json_document(getattr(self, f.name)) for f in fields(self)
                    if f.name not in ("metrics", "steps", "cohorts", "change_windows", "approvals", *_DERIVED_FIELDS)}
        document["approvals"] = None if self.approvals is None else self.approvals.to_dict()
        document["steps"] = [step.to_document() for step in self.traffic_steps]
        document["cohorts"] = _cohorts_document(self.cohorts)
        document["change_windows"] = None if self.change_windows is None else self.change_windows.to_dict()
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


def _cohorts_document(cohorts: Any) -> Any:
    """{name: {sql|file: ...}} from CohortSources (or the mapping a document already holds)."""
    if isinstance(cohorts, (tuple, list)) and all(isinstance(source, CohortSource) for source in cohorts):
        return {source.name: source.to_document() for source in cohorts}
    return as_json_document(cohorts)


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
    """Lower bound on a run that promotes: baseline, one bake per step (its own, if it has one),
    then standby. Change windows can only make it longer."""
    return plan.baseline_seconds + sum(plan.bake_seconds_for(step) for step in plan.steps) + plan.standby_seconds
