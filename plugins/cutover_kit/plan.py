"""Cutover plan: how traffic moves from blue to green, and what green must prove at each step.

A plan lives in include/plans/<name>.yaml. A run loads it once (load_plan / plan_for_params),
optionally adjusted by Airflow Params (OVERRIDABLE_FIELDS), and hands it to tasks as a plain
dict (CutoverPlan.to_dict) through XCom. Invalid input of any kind is refused with a PlanError
whose message names the plan and the field, so a bad plan stops a run before traffic moves.

Pure Python on purpose: no Airflow import, no I/O at import time.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PLANS_DIR = REPO_ROOT / "include" / "plans"

TRAFFIC_STAGE_PREFIX = "traffic_"
STANDBY_STAGE = "standby"
# Kept equal to cutover_kit.hooks.flags.FLAG_BACKENDS (a unit test checks); that module imports Airflow.
FLAG_BACKENDS = ("file", "unleash")
YAML_SUFFIXES = (".yaml", ".yml")


class PlanError(ValueError):
    """A plan file, plan dict or override is invalid; the message names the plan and the field."""


# --------------------------------------------------------------------------- schema

_SLO_PROPERTIES: dict[str, dict[str, Any]] = {
    "max_error_ratio": {
        "type": "number", "minimum": 0, "maximum": 1,
        "description": "Ceiling on green's 5xx ratio, whatever blue does (0.01 = 1 %).",
    },
    "max_error_ratio_delta_vs_blue": {
        "type": "number", "minimum": 0, "maximum": 1,
        "description": "How much green's 5xx ratio may exceed blue's in the same window.",
    },
    "max_latency_ratio_vs_blue": {
        # Below 1 would demand that green be faster than blue, which is not a safety gate.
        "type": "number", "minimum": 1, "maximum": 100,
        "description": "Green's latency quantile may be at most this multiple of blue's.",
    },
    "max_blue_regression_ratio": {
        "type": "number", "minimum": 1, "maximum": 100,
        "description": "Blue's p95 may be at most this multiple of its pre-cutover baseline (stage 12).",
    },
    "latency_floor_seconds": {
        "type": "number", "minimum": 0, "maximum": 60,
        "description": "Green passes any latency check below this (2 ms vs 4 ms is no regression).",
    },
    "quantiles": {
        "type": "array", "minItems": 1, "maxItems": 5, "uniqueItems": True,
        "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "description": "Latency quantiles compared green vs blue (0.95 = p95).",
    },
    "confidence_z": {
        "type": "number", "exclusiveMinimum": 0, "maximum": 10,
        "description": "z-score of the confidence bound on error ratios (1.96 = 95 %).",
    },
}

_SLO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": _SLO_PROPERTIES,
}

_PLAN_PROPERTIES: dict[str, dict[str, Any]] = {
    "steps": {
        "type": "array", "minItems": 1, "maxItems": 20,
        "items": {"type": "integer", "minimum": 1, "maximum": 100},
        "description": "Percent of traffic on green at each step; increasing, ending at 100.",
    },
    "bake_seconds": {
        "type": "integer", "minimum": 1, "maximum": 86400,
        "description": "Seconds of clean SLO verdicts a step needs before the next step.",
    },
    "step_timeout_seconds": {
        "type": "integer", "minimum": 1, "maximum": 604800,
        "description": "Roll back a step that has not baked by then; >= bake_seconds.",
    },
    "poll_interval_seconds": {
        "type": "number", "minimum": 0.2, "maximum": 60,
        "description": "Seconds between SLO evaluations.",
    },
    "window_seconds": {
        "type": "integer", "minimum": 2, "maximum": 3600,
        "description": "Sliding window each SLO verdict is computed over; <= bake_seconds.",
    },
    "min_requests": {
        "type": "integer", "minimum": 1, "maximum": 1000000,
        "description": "Green requests a window needs before it can pass or fail.",
    },
    "consecutive_breaches": {
        "type": "integer", "minimum": 1, "maximum": 100,
        "description": "Failing verdicts in a row that trigger a rollback.",
    },
    "standby_seconds": {
        "type": "integer", "minimum": 0, "maximum": 604800,
        "description": "Seconds blue stays warm and watched after green reaches 100 %.",
    },
    "rollback_drill_percent": {
        "type": "integer", "minimum": 1, "maximum": 50,
        "description": "Percent sent to green and back before the first step; < steps[0].",
    },
    "baseline_seconds": {
        "type": "integer", "minimum": 2, "maximum": 3600,
        "description": "Seconds blue is measured alone before any traffic moves.",
    },
    "flag_backend": {
        "type": "string", "enum": list(FLAG_BACKENDS),
        "description": "Where the feature flags live: a flagd JSON file (Connection flagd_default) or Unleash (unleash_default).",
    },
}

#: Plan fields a plan file may leave out, with the value they then take.
OPTIONAL_FIELD_DEFAULTS: dict[str, Any] = {"flag_backend": "file"}

#: JSON schema (draft 2020-12) of a plan file. Cross-field rules (steps increasing to 100,
#: drill below the first step, timeout >= bake, window <= bake) are checked in code because
#: JSON schema cannot compare two fields.
PLAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Cutover plan file",
    "type": "object",
    "additionalProperties": False,
    "required": sorted(set(_PLAN_PROPERTIES) - set(OPTIONAL_FIELD_DEFAULTS)),
    "properties": {**_PLAN_PROPERTIES, "slo": _SLO_SCHEMA},
}

# The dict form (to_dict / from_dict, XCom) also carries the name, and nothing is optional.
_PLAN_DICT_SCHEMA: dict[str, Any] = {
    **PLAN_SCHEMA,
    "title": "Cutover plan (dict form)",
    "required": sorted([*(set(_PLAN_PROPERTIES) - set(OPTIONAL_FIELD_DEFAULTS)), "name", "slo"]),
    "properties": {
        **PLAN_SCHEMA["properties"],
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
    },
}


def _nullable(fragment: Mapping[str, Any]) -> dict[str, Any]:
    """The same schema fragment, also accepting null (null = keep the plan file's value)."""
    nullable = copy.deepcopy(dict(fragment))
    nullable["type"] = ["null", fragment["type"]]
    if "enum" in nullable:  # an enum is checked whatever the type says: null must be listed too
        nullable["enum"] = [None, *nullable["enum"]]
    return nullable


_SLO_OVERRIDE_PREFIX = "slo_"

#: Fields an Airflow Param may override, as JSON-schema fragments that allow null.
#: Keys prefixed "slo_" override the matching field of the plan's slo section.
OVERRIDABLE_FIELDS: dict[str, dict[str, Any]] = {
    **{
        field_name: _nullable(_PLAN_PROPERTIES[field_name])
        for field_name in (
            "steps", "bake_seconds", "step_timeout_seconds", "window_seconds",
            "min_requests", "consecutive_breaches", "standby_seconds", "flag_backend",
        )
    },
    **{
        _SLO_OVERRIDE_PREFIX + slo_field: _nullable(_SLO_PROPERTIES[slo_field])
        for slo_field in ("max_error_ratio", "max_latency_ratio_vs_blue")
    },
}

_OVERRIDES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": OVERRIDABLE_FIELDS,
}

_PLAN_FILE_VALIDATOR = jsonschema.Draft202012Validator(PLAN_SCHEMA)
_PLAN_DICT_VALIDATOR = jsonschema.Draft202012Validator(_PLAN_DICT_SCHEMA)
_SLO_VALIDATOR = jsonschema.Draft202012Validator(_SLO_SCHEMA)
_OVERRIDES_VALIDATOR = jsonschema.Draft202012Validator(_OVERRIDES_SCHEMA)


# --------------------------------------------------------------------------- shared helpers


def describe_schema_errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    """One line per schema error, each starting with the field's path (e.g. "slo.quantiles[0]")."""
    errors = sorted(validator.iter_errors(document), key=lambda error: error.json_path)
    return [_describe_schema_error(error) for error in errors]


def _describe_schema_error(error: jsonschema.ValidationError) -> str:
    field_path = error.json_path.removeprefix("$").removeprefix(".")
    # Errors about the top-level object ("'x' is a required property") already quote the field.
    return f"{field_path}: {error.message}" if field_path else error.message


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys.

    PyYAML silently keeps the last of two equal keys, so a file with two `steps:` lines would
    run a plan nobody reviewed.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the parent class reports unhashable keys itself
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: Path, *, context: str, error: type[ValueError]) -> dict[str, Any]:
    """Parse a YAML file whose top level must be a mapping; any problem raises `error`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{context}: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise error(f"{context}: {path} is not valid YAML: {detail}") from exc
    if not isinstance(document, dict):
        got = "an empty file" if document is None else f"a {type(document).__name__}"
        raise error(f"{context}: {path} must contain a YAML mapping at the top level; got {got}")
    return document


def _as_json_document(value: Any) -> Any:
    """Tuples -> lists, mappings -> dicts, recursively: what JSON schema and XCom expect."""
    if isinstance(value, Mapping):
        return {key: _as_json_document(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json_document(item) for item in value]
    return value


def looks_like_path(name_or_path: str) -> bool:
    """A slash or a .yaml/.yml suffix means a file path; anything else is a name."""
    return "/" in name_or_path or "\\" in name_or_path or name_or_path.endswith(YAML_SUFFIXES)


# --------------------------------------------------------------------------- semantic rules


def _steps_increase_to_100(steps: list[int]) -> bool:
    return all(a < b for a, b in zip(steps, steps[1:])) and steps[-1] == 100


def _plan_rule_violations(document: Mapping[str, Any]) -> list[str]:
    """Cross-field rules JSON schema cannot express; call only on a schema-valid document."""
    steps = list(document["steps"])
    bake = document["bake_seconds"]
    violations = []
    if not _steps_increase_to_100(steps):
        violations.append(f"steps must increase strictly and end at 100; got {steps}")
    if document["rollback_drill_percent"] >= steps[0]:
        # The drill proves the way back with less traffic at risk than the first real step.
        violations.append(
            f"rollback_drill_percent must be below the first step ({steps[0]}); "
            f"got {document['rollback_drill_percent']}"
        )
    if document["step_timeout_seconds"] < bake:
        violations.append(
            f"step_timeout_seconds must be >= bake_seconds ({bake}); "
            f"got {document['step_timeout_seconds']}"
        )
    if document["window_seconds"] > bake:
        # A longer window would judge a step partly on traffic from the step before it.
        violations.append(
            f"window_seconds must be <= bake_seconds ({bake}); got {document['window_seconds']}"
        )
    return violations


def _refuse_invalid_plan(
    document: Any, validator: jsonschema.protocols.Validator, context: str
) -> None:
    problems = describe_schema_errors(validator, document)
    if not problems:
        problems = _plan_rule_violations(document)
    if problems:
        raise PlanError(f"{context}: " + "; ".join(problems))


# --------------------------------------------------------------------------- model

_INTEGER_FIELDS = tuple(
    name for name, spec in _PLAN_PROPERTIES.items() if spec["type"] == "integer"
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
        raw = {f.name: _as_json_document(getattr(self, f.name)) for f in fields(self)}
        problems = describe_schema_errors(_SLO_VALIDATOR, raw)
        if problems:
            raise PlanError("slo: " + "; ".join(problems))
        # Normalise YAML/JSON ints to floats so equal policies compare and serialise equal.
        for f in fields(self):
            value = getattr(self, f.name)
            normalised = tuple(float(q) for q in value) if f.name == "quantiles" else float(value)
            object.__setattr__(self, f.name, normalised)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _as_json_document(getattr(self, f.name)) for f in fields(self)}


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
    flag_backend: str = OPTIONAL_FIELD_DEFAULTS["flag_backend"]

    def __post_init__(self) -> None:
        if not isinstance(self.slo, SLOPolicy):
            raise PlanError(f"plan {self.name!r}: slo must be an SLOPolicy; got {self.slo!r}")
        raw = {f.name: _as_json_document(getattr(self, f.name)) for f in fields(self)}
        raw["slo"] = self.slo.to_dict()
        _refuse_invalid_plan(raw, _PLAN_DICT_VALIDATOR, f"plan {self.name!r}")
        # JSON schema accepts 300.0 as an integer; store real ints so to_dict() round-trips.
        object.__setattr__(self, "steps", tuple(int(step) for step in self.steps))
        for name in _INTEGER_FIELDS:
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "poll_interval_seconds", float(self.poll_interval_seconds))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists, not tuples), used as XCom; CutoverPlan.from_dict inverts it."""
        document = {f.name: _as_json_document(getattr(self, f.name)) for f in fields(self)}
        document["slo"] = self.slo.to_dict()
        return document

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CutoverPlan:
        """Validate and build a plan from its dict form (to_dict output, e.g. from XCom)."""
        if not isinstance(d, Mapping):
            raise PlanError(f"plan: expected a mapping; got {type(d).__name__}")
        document = _as_json_document(d)
        _refuse_invalid_plan(document, _PLAN_DICT_VALIDATOR, f"plan {document.get('name')!r}")
        return _build_plan(document["name"], document)


def _build_plan(name: str, document: Mapping[str, Any]) -> CutoverPlan:
    """Build from a schema-valid document (file form or dict form)."""
    plan_fields = {key: document.get(key, OPTIONAL_FIELD_DEFAULTS.get(key)) for key in _PLAN_PROPERTIES}
    return CutoverPlan(name=name, slo=SLOPolicy(**document.get("slo", {})), **plan_fields)


# --------------------------------------------------------------------------- loading


def list_plans(plans_dir: Path = DEFAULT_PLANS_DIR) -> list[str]:
    """Names of the plan files in plans_dir, sorted."""
    return sorted(path.stem for path in Path(plans_dir).glob("*.yaml"))


def _plan_path(name_or_path: str, plans_dir: Path) -> Path:
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise PlanError(
            f"plan: expected a plan name or a path to a .yaml file; got {name_or_path!r}"
        )
    if looks_like_path(name_or_path):
        path = Path(name_or_path)
        if path.suffix not in YAML_SUFFIXES:
            raise PlanError(f"plan {path.stem!r}: {path} is not a .yaml file")
        if not path.is_file():
            raise PlanError(f"plan {path.stem!r}: no such file {path}")
        return path
    path = Path(plans_dir) / f"{name_or_path}.yaml"
    if not path.is_file():
        available = ", ".join(list_plans(plans_dir)) or "none"
        raise PlanError(
            f"plan {name_or_path!r}: no file {path} (plans in {plans_dir}: {available})"
        )
    return path


def _apply_overrides(
    document: Mapping[str, Any], overrides: Mapping[str, Any], context: str
) -> dict[str, Any]:
    """The plan document with every non-None override applied; None keeps the file's value."""
    if not isinstance(overrides, Mapping):
        raise PlanError(f"{context}: overrides must be a mapping; got {type(overrides).__name__}")
    unknown = sorted(str(key) for key in overrides if key not in OVERRIDABLE_FIELDS)
    if unknown:
        raise PlanError(
            f"{context}: unknown override(s) {', '.join(unknown)}; "
            f"overridable: {', '.join(OVERRIDABLE_FIELDS)}"
        )
    problems = describe_schema_errors(_OVERRIDES_VALIDATOR, _as_json_document(overrides))
    if problems:
        raise PlanError(f"{context}: " + "; ".join(f"overrides.{p}" for p in problems))
    merged = copy.deepcopy(dict(document))
    slo = dict(merged.get("slo", {}))
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith(_SLO_OVERRIDE_PREFIX):
            slo[key.removeprefix(_SLO_OVERRIDE_PREFIX)] = _as_json_document(value)
        else:
            merged[key] = _as_json_document(value)
    merged["slo"] = slo
    return merged


def load_plan(
    name_or_path: str,
    overrides: Mapping[str, Any] | None = None,
    plans_dir: Path = DEFAULT_PLANS_DIR,
) -> CutoverPlan:
    """Load, validate and (optionally) override a plan.

    name_or_path is a plan name (-> plans_dir/<name>.yaml) or a path to a .yaml file (anything
    containing a slash or ending in .yaml/.yml). The plan's name is the file's stem.
    """
    path = _plan_path(name_or_path, plans_dir)
    context = f"plan {path.stem!r}"
    document = read_yaml_mapping(path, context=context, error=PlanError)
    # Check the file on its own first, so its mistakes are not blamed on the overrides.
    _refuse_invalid_plan(document, _PLAN_FILE_VALIDATOR, context)
    if overrides is None:
        return _build_plan(path.stem, document)
    overridden = _apply_overrides(document, overrides, context)
    applied = [key for key, value in overrides.items() if value is not None]
    if not applied:
        return _build_plan(path.stem, document)
    _refuse_invalid_plan(
        overridden, _PLAN_FILE_VALIDATOR, f"{context} with overrides ({', '.join(applied)})"
    )
    return _build_plan(path.stem, overridden)


def plan_for_params(
    params: Mapping[str, Any], plans_dir: Path = DEFAULT_PLANS_DIR
) -> CutoverPlan:
    """The plan an Airflow run asked for: params["plan"] plus any OVERRIDABLE_FIELDS keys.

    Other params (not plan settings) are ignored, so a DAG may carry params of its own.
    """
    if not isinstance(params, Mapping):
        raise PlanError(f"params: expected a mapping; got {type(params).__name__}")
    if "plan" not in params:
        raise PlanError("params: 'plan' is required (a plan name or a path to a .yaml file)")
    overrides = {key: params[key] for key in OVERRIDABLE_FIELDS if key in params}
    return load_plan(params["plan"], overrides, plans_dir)


# --------------------------------------------------------------------------- stages


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
