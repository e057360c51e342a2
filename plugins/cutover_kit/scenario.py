"""Rehearsal scenarios: a plan, the faults to inject, the traffic to send and the outcome to expect.

A scenario lives in include/scenarios/<name>.yaml:

    name: green-errors                 # must match the file name
    description: Green fails 20 % of requests once 25 % of traffic is on it.
    plan: rehearsal                    # plan name, or a path (relative to this file)
    overrides: {}                      # keys of cutover_kit.plan.OVERRIDABLE_FIELDS
    traffic: {rps: 40, max_seconds: 900}
    expect: {outcome: rolled_back, reason_contains: "5xx"}
    faults:
      - color: green                   # blue | green
        fault: errors                  # errors | latency | crash | capacity_limit | insecure |
                                       # corrupt_writes | drop_writes
        error_fraction: 0.2            # errors only, (0, 1]
        # fraction: 0.5                # corrupt_writes / drop_writes only, (0, 1]: the share of new
                                       # orders green stores with a wrong amount / acknowledges but
                                       # never commits (green's TypeScript app only)
        at_stage: traffic_25           # a stage of the plan, or after_seconds: N (> 0)

A fault fires once its trigger is reached: `at_stage` when the cutover enters that stage,
`after_seconds` that many seconds after the scenario's traffic starts. `capacity_limit` takes
`max_concurrent` (the app serves at most that many of its own API requests at once, the others
queue); `insecure` takes `weakness` (stack_trace, missing_security_headers, x_powered_by,
unauthenticated_route). `stage_instances: true` also puts the fault in the color's stage instances (the extra
instances stages 6 and 7 test, on a copy of the database) from their start: the same build
carries the same defect. Such a fault may leave out the trigger: then only the stage instances
have it. `corrupt_writes` and `drop_writes` take `fraction` and exist in green's app only.
Every invalid value is refused with a ScenarioError naming the scenario and the field.

Pure Python on purpose: no Airflow import, no I/O at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from cutover_kit.paths import REPO_ROOT
from cutover_kit.plan import (
    DEFAULT_PLANS_DIR,
    OVERRIDABLE_FIELDS,
    CutoverPlan,
    PlanError,
    describe_schema_errors,
    green_percent_of_stage,
    load_plan,
    shortest_promotion_seconds,
    stage_names,
)
from cutover_kit.yaml_loader import YAML_SUFFIXES, looks_like_path, read_yaml_mapping

DEFAULT_SCENARIOS_DIR = REPO_ROOT / "include" / "scenarios"

COLORS = ("blue", "green")
# "failed" is what a data fault must end in: the step rolls back at once, but the rows green damaged
# before the gate caught it remain, and the end-of-run integrity check fails the run naming them.
OUTCOMES = ("promoted", "rolled_back", "failed")
TRIGGERS = ("at_stage", "after_seconds")

#: The parameters each kind of fault takes; any other parameter is refused.
PARAMETERS_OF_FAULT: dict[str, tuple[str, ...]] = {
    "errors": ("error_fraction",),
    "latency": ("added_latency_ms",),
    "crash": (),
    "capacity_limit": ("max_concurrent",),
    "insecure": ("weakness",),
    "corrupt_writes": ("fraction",),
    "drop_writes": ("fraction",),
}
FAULT_PARAMETERS = ("error_fraction", "added_latency_ms", "max_concurrent", "weakness", "fraction")
#: The insecure fault's weaknesses (each app's /__fault `weakness`).
WEAKNESSES = ("stack_trace", "missing_security_headers", "x_powered_by", "unauthenticated_route")
#: Faults only green's app implements (sandbox/apps/typescript/src/faults.ts).
GREEN_ONLY_FAULTS = ("corrupt_writes", "drop_writes")


class ScenarioError(ValueError):
    """A scenario file or value is invalid; the message names the scenario and the field."""


# --------------------------------------------------------------------------- schema

_FAULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["color", "fault"],
    "properties": {
        "color": {"enum": list(COLORS)},
        "fault": {"enum": list(PARAMETERS_OF_FAULT)},
        # Whether the stage exists depends on the plan's steps: checked in code.
        "at_stage": {"type": "string", "minLength": 1},
        "after_seconds": {"type": "number", "exclusiveMinimum": 0},
        "error_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "added_latency_ms": {"type": "integer", "minimum": 1, "maximum": 60000},
        "max_concurrent": {"type": "integer", "minimum": 1, "maximum": 10000},
        "weakness": {"enum": list(WEAKNESSES)},
        "stage_instances": {"type": "boolean"},
        "fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    },
}

#: JSON schema (draft 2020-12) of a scenario file. Rules that need the plan (stage names,
#: durations) or compare fields (fault kind vs parameters, one trigger) are checked in code.
SCENARIO_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Cutover rehearsal scenario",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "description", "plan", "traffic", "expect"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "description": {"type": "string", "minLength": 1},
        "plan": {"type": "string", "minLength": 1},
        "overrides": {
            "type": "object",
            "additionalProperties": False,
            "properties": OVERRIDABLE_FIELDS,
        },
        "traffic": {
            "type": "object",
            "additionalProperties": False,
            "required": ["rps", "max_seconds"],
            "properties": {
                # The generator runs on 127.0.0.1 beside everything else: keep it bounded.
                "rps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
                "max_seconds": {"type": "integer", "minimum": 1, "maximum": 86400},
            },
        },
        "expect": {
            "type": "object",
            "additionalProperties": False,
            "required": ["outcome"],
            "properties": {
                "outcome": {"enum": list(OUTCOMES)},
                "reason_contains": {"type": "string", "minLength": 1},
            },
        },
        "faults": {"type": "array", "maxItems": 20, "items": _FAULT_SCHEMA},
        # Data faults for stage 2: damage rows behind both apps' backs once the backfill is done
        # (triggers bypassed), so only Great Expectations can notice.
        "database": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "corrupt_after_backfill": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["rows"],
                    "properties": {"rows": {"type": "integer", "minimum": 1, "maximum": 100000}},
                },
            },
        },
    },
}

_SCENARIO_VALIDATOR = jsonschema.Draft202012Validator(SCENARIO_SCHEMA)
_FAULT_VALIDATOR = jsonschema.Draft202012Validator(_FAULT_SCHEMA)


# --------------------------------------------------------------------------- rules


def _fault_rule_violations(fault: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Kind-vs-parameter and trigger rules for one schema-valid fault document."""
    kind = fault["fault"]
    takes = PARAMETERS_OF_FAULT[kind]
    given = [name for name in FAULT_PARAMETERS if fault.get(name) is not None]
    violations = [
        f"{prefix}{name} is required for fault '{kind}'" for name in takes if name not in given
    ]
    violations += [
        f"{prefix}{name} is not allowed for fault '{kind}' "
        f"(it takes {', '.join(takes) or 'no parameters'})"
        for name in given
        if name not in takes
    ]
    if kind in GREEN_ONLY_FAULTS and fault["color"] != "green":
        violations.append(f"{prefix}fault '{kind}' exists in green's app only; got color '{fault['color']}'")
    triggers = [name for name in TRIGGERS if fault.get(name) is not None]
    if len(triggers) > 1 or (not triggers and not fault.get("stage_instances")):
        got = "both" if triggers else "neither"
        location = f"{prefix.removesuffix('.')}: " if prefix else ""
        violations.append(f"{location}give exactly one of at_stage or after_seconds "
                          f"(or neither with stage_instances: true); got {got}")
    return violations


def _scenario_rule_violations(document: Mapping[str, Any], plan: CutoverPlan) -> list[str]:
    """Rules that need the (overridden) plan; call only on a schema-valid document."""
    stages = stage_names(plan)
    max_seconds = document["traffic"]["max_seconds"]
    violations = []
    shortest = shortest_promotion_seconds(plan)
    if max_seconds < shortest:
        # Traffic that stops before the plan can finish starves the judge of data, so the
        # run would end in "not enough data" instead of the outcome under test.
        violations.append(
            f"traffic.max_seconds {max_seconds} is shorter than plan '{plan.name}' can take "
            f"to promote ({shortest} s: baseline, one bake per step, standby)"
        )
    for index, fault in enumerate(document.get("faults", [])):
        prefix = f"faults[{index}]."
        violations += _fault_rule_violations(fault, prefix)
        stage = fault.get("at_stage")
        if stage is not None and stage not in stages:
            violations.append(
                f"{prefix}at_stage '{stage}' is not a stage of plan '{plan.name}' "
                f"(stages: {', '.join(stages)})"
            )
        after = fault.get("after_seconds")
        if after is not None and after >= max_seconds:
            violations.append(
                f"{prefix}after_seconds {after} is not before traffic.max_seconds {max_seconds}"
            )
    return violations


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Fault:
    """One fault to inject into one color, once its trigger (stage or time) is reached."""

    color: str
    fault: str
    at_stage: str | None = None
    after_seconds: float | None = None
    error_fraction: float | None = None
    added_latency_ms: int | None = None
    max_concurrent: int | None = None
    weakness: str | None = None
    #: Also in the color's stage instances (stages 6 and 7) from their start.
    stage_instances: bool | None = None
    fraction: float | None = None

    def __post_init__(self) -> None:
        document = self.to_dict()
        problems = describe_schema_errors(_FAULT_VALIDATOR, document)
        if not problems:
            problems = _fault_rule_violations(document)
        if not problems and self.at_stage is not None:
            try:
                green_percent_of_stage(self.at_stage)
            except PlanError as exc:
                problems = [f"at_stage: {exc}"]
        if problems:
            raise ScenarioError("fault: " + "; ".join(problems))

    @property
    def on_live_instances(self) -> bool:
        """False for a fault of the stage instances only (no trigger)."""
        return self.at_stage is not None or self.after_seconds is not None

    def app_fault_body(self) -> dict[str, Any]:
        """The app's ``/__fault`` body of this fault (the sandbox's fault control speaks it too)."""
        if self.fault == "errors":
            return {"error_fraction": self.error_fraction}
        if self.fault == "latency":
            return {"added_latency_ms": self.added_latency_ms}
        if self.fault == "capacity_limit":
            return {"max_concurrent": self.max_concurrent}
        if self.fault == "insecure":
            return {"weakness": self.weakness}
        if self.fault in GREEN_ONLY_FAULTS:
            # The app's field names: corrupt_writes_fraction, drop_writes_fraction.
            return {f"{self.fault}_fraction": self.fraction}
        return {"crash": True}

    @property
    def at_green_percent(self) -> int | None:
        """Green's traffic share when the fault fires (traffic_25 -> 25, standby -> 100);
        None for a fault triggered by time."""
        return None if self.at_stage is None else green_percent_of_stage(self.at_stage)

    def to_dict(self) -> dict[str, Any]:
        """The fault as written in a scenario file (unset fields left out)."""
        return {key: value for key, value in asdict(self).items() if value is not None and value is not False}


@dataclass(frozen=True)
class Scenario:
    """A validated rehearsal scenario; `plan` already has `overrides` applied."""

    name: str
    description: str
    plan: CutoverPlan
    overrides: Mapping[str, Any] = field(hash=False)
    traffic_rps: float
    traffic_max_seconds: int
    expect_outcome: str
    expect_reason_contains: str | None
    faults: tuple[Fault, ...]
    database: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def corrupt_rows_after_backfill(self) -> int | None:
        return (self.database.get("corrupt_after_backfill") or {}).get("rows")

    def __post_init__(self) -> None:
        if not isinstance(self.plan, CutoverPlan):
            raise ScenarioError(f"scenario {self.name}: plan must be a CutoverPlan")
        if not all(isinstance(fault, Fault) for fault in self.faults):
            raise ScenarioError(f"scenario {self.name}: faults must be Fault objects")
        object.__setattr__(self, "faults", tuple(self.faults))
        object.__setattr__(self, "overrides", dict(self.overrides))
        object.__setattr__(self, "database", dict(self.database))
        document = self._file_document()
        problems = describe_schema_errors(_SCENARIO_VALIDATOR, document)
        if not problems:
            problems = _scenario_rule_violations(document, self.plan)
        if problems:
            raise ScenarioError(f"scenario {self.name}: " + "; ".join(problems))

    def _file_document(self) -> dict[str, Any]:
        expect: dict[str, Any] = {"outcome": self.expect_outcome}
        if self.expect_reason_contains is not None:
            expect["reason_contains"] = self.expect_reason_contains
        return {
            "name": self.name,
            "description": self.description,
            "plan": self.plan.name,
            "overrides": dict(self.overrides),
            "traffic": {"rps": self.traffic_rps, "max_seconds": self.traffic_max_seconds},
            "expect": expect,
            "faults": [fault.to_dict() for fault in self.faults],
            **({"database": dict(self.database)} if self.database else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record for XCom and the rehearsal result file; `plan` is the full plan."""
        return {**self._file_document(), "plan": self.plan.to_dict()}


# --------------------------------------------------------------------------- loading


def list_scenarios(scenarios_dir: Path = DEFAULT_SCENARIOS_DIR) -> list[str]:
    """Names of the scenario files in scenarios_dir, sorted."""
    if not Path(scenarios_dir).is_dir():
        raise ScenarioError(f"scenarios: no directory {scenarios_dir}")
    return sorted(path.stem for path in Path(scenarios_dir).glob("*.yaml"))


def _scenario_path(name_or_path: str, scenarios_dir: Path) -> Path:
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ScenarioError(
            f"scenario: expected a scenario name or a path to a .yaml file; got {name_or_path!r}"
        )
    is_path = looks_like_path(name_or_path)
    path = Path(name_or_path) if is_path else Path(scenarios_dir) / f"{name_or_path}.yaml"
    if path.suffix not in YAML_SUFFIXES:
        raise ScenarioError(f"scenario {path.stem}: {path} is not a .yaml file")
    if not path.is_file():
        known = "" if is_path else f" (scenarios: {', '.join(list_scenarios(scenarios_dir))})"
        raise ScenarioError(f"scenario {path.stem}: no such file {path}{known}")
    return path


def _plan_reference(plan: str, scenario_path: Path) -> str:
    """A plan given as a relative path is relative to the scenario file, not the cwd."""
    if looks_like_path(plan) and not Path(plan).is_absolute():
        return str(scenario_path.parent / plan)
    return plan


def load_scenario(
    name_or_path: str,
    scenarios_dir: Path = DEFAULT_SCENARIOS_DIR,
    plans_dir: Path = DEFAULT_PLANS_DIR,
) -> Scenario:
    """Load and validate a scenario: name -> scenarios_dir/<name>.yaml, or a path to a .yaml file.

    Its plan is loaded from plans_dir (or the path given) with the scenario's overrides applied.
    """
    path = _scenario_path(name_or_path, scenarios_dir)
    context = f"scenario {path.stem}"
    document = read_yaml_mapping(path, context=context, error=ScenarioError)
    problems = describe_schema_errors(_SCENARIO_VALIDATOR, document)
    if problems:
        raise ScenarioError(f"{context}: " + "; ".join(problems))
    if document["name"] != path.stem:
        # Results and task logs are keyed by name; a copied file must not pose as its original.
        raise ScenarioError(
            f"{context}: name '{document['name']}' must match the file name '{path.stem}'"
        )
    overrides = document.get("overrides", {})
    try:
        plan = load_plan(_plan_reference(document["plan"], path), overrides, plans_dir)
    except PlanError as exc:
        raise ScenarioError(f"{context}: {exc}") from exc
    problems = _scenario_rule_violations(document, plan)
    if problems:
        raise ScenarioError(f"{context}: " + "; ".join(problems))
    return Scenario(
        name=document["name"],
        description=document["description"],
        plan=plan,
        overrides=overrides,
        traffic_rps=float(document["traffic"]["rps"]),
        traffic_max_seconds=int(document["traffic"]["max_seconds"]),
        expect_outcome=document["expect"]["outcome"],
        expect_reason_contains=document["expect"].get("reason_contains"),
        faults=tuple(Fault(**fault) for fault in document.get("faults", [])),
        database=document.get("database", {}),
    )
