"""What a valid plan is: the JSON schema of a plan file, of its dict form and of Param overrides,
and the cross-field rules JSON schema cannot express. Invalid input raises :class:`PlanError`."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema

from cutover_kit.flags.model import FLAG_BACKENDS
from cutover_kit.promql import COLORS, MEASURES, REQUIRED_MEASURES, template_problems


class PlanError(ValueError):
    """A plan file, plan dict or override is invalid; the message names the plan and the field."""


SLO_PROPERTIES: dict[str, dict[str, Any]] = {
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
    "properties": SLO_PROPERTIES,
}

#: Stage 6 (load testing against each color's stage instance): the step load, the SLO that
#: defines each color's knee, and the capacity plan green must meet (cutover_kit.load.capacity).
LOAD_TEST_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["users_per_step", "step_seconds", "max_requests", "max_p95_ms", "max_error_ratio", "capacity"],
    "description": "Stage 6: step load per color on its stage instance, the knee's SLO, the capacity plan.",
    "properties": {
        "users_per_step": {
            "type": "array", "minItems": 1, "maxItems": 20, "items": {"type": "integer", "minimum": 1, "maximum": 500},
            "description": "Concurrent simulated users of each step, increasing (closed loop: the rate follows).",
        },
        "step_seconds": {"type": "integer", "minimum": 1, "maximum": 300, "description": "Seconds each step holds."},
        "max_requests": {"type": "integer", "minimum": 1, "maximum": 1000000,
                         "description": "Cap on requests per color: the run stops there whatever the steps say."},
        "wait_seconds": {"type": "number", "minimum": 0, "maximum": 10,
                         "description": "Pause of each user between two requests (default 0.05)."},
        "max_p95_ms": {"type": "number", "exclusiveMinimum": 0, "maximum": 60000,
                       "description": "A step whose p95 exceeds this is past the knee."},
        "max_error_ratio": {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                            "description": "A step whose error ratio exceeds this is past the knee."},
        "capacity": {
            "type": "object", "additionalProperties": False, "required": ["peak_rps", "headroom"],
            "properties": {
                "peak_rps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000000,
                             "description": "Expected peak request rate green must carry."},
                "headroom": {"type": "number", "minimum": 1, "maximum": 100,
                             "description": "Green's knee must be at least peak_rps x headroom."},
                "knee_tolerance": {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                                   "description": "Green's knee may be this fraction below blue's (default 0.10)."},
                "max_latency_ratio_vs_blue": {"type": "number", "minimum": 1, "maximum": 100,
                                              "description": "Green's p95 at peak_rps may be this multiple of blue's (default 1.5)."},
                "latency_floor_ms": {"type": "number", "minimum": 0, "maximum": 60000,
                                     "description": "A p95 at peak below this always passes (default 50)."},
            },
        },
    },
}

PLAN_PROPERTIES: dict[str, dict[str, Any]] = {
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
    "metric_templates": {
        "type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
        "description": "Shipped per-color metric template set include/prometheus/templates/<name>.yaml "
                       "(or give `metrics` inline instead).",
    },
    "load_test": LOAD_TEST_SCHEMA,
}

# The set that fits the sandbox's two apps (Rails blue, TypeScript green): what a plan that names
# no set is rehearsed against.
DEFAULT_METRIC_TEMPLATES = "sandbox_apps"

#: Plan fields a plan file may leave out, with the value they then take.
#: A plan without `load_test` is valid, but stage 6 then fails (it never passes by default).
OPTIONAL_FIELD_DEFAULTS: dict[str, Any] = {"flag_backend": "file", "metric_templates": DEFAULT_METRIC_TEMPLATES,
                                           "load_test": None}

_COLOR_TEMPLATES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": list(REQUIRED_MEASURES),
    "properties": {
        measure: ({"type": "string", "minLength": 1} if measure in REQUIRED_MEASURES
                  else {"type": ["string", "null"], "minLength": 1})
        for measure in MEASURES
    },
}

#: {blue: {measure: PromQL template}, green: {...}}: a plan's inline `metrics`, a template file's body.
METRICS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": list(COLORS),
    "properties": {color: _COLOR_TEMPLATES_SCHEMA for color in COLORS},
    "description": "Per-color PromQL templates with {window} (cutover_kit.promql).",
}

#: A shipped template set file: the two colors plus a line saying which apps it fits.
TEMPLATE_SET_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Metric template set",
    "type": "object",
    "additionalProperties": False,
    "required": ["description", *COLORS],
    "properties": {"description": {"type": "string", "minLength": 1}, **METRICS_SCHEMA["properties"]},
}

#: JSON schema (draft 2020-12) of a plan file. Cross-field rules (steps increasing to 100,
#: drill below the first step, timeout >= bake, window <= bake) are checked in code because
#: JSON schema cannot compare two fields.
PLAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Cutover plan file",
    "type": "object",
    "additionalProperties": False,
    "required": sorted(set(PLAN_PROPERTIES) - set(OPTIONAL_FIELD_DEFAULTS)),
    "properties": {**PLAN_PROPERTIES, "slo": _SLO_SCHEMA, "metrics": METRICS_SCHEMA},
}

# The dict form (to_dict / from_dict, XCom) also carries the name, and nothing is optional.
_PLAN_DICT_SCHEMA: dict[str, Any] = {
    **PLAN_SCHEMA,
    "title": "Cutover plan (dict form)",
    # `metrics` is the resolved templates (from the named set or inline), so a task or trigger
    # never reads a template file again: it runs what stage 1 checked.
    "required": sorted([*(set(PLAN_PROPERTIES) - set(OPTIONAL_FIELD_DEFAULTS)), "name", "slo", "metrics"]),
    "properties": {
        **PLAN_SCHEMA["properties"],
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "metric_templates": {"type": ["string", "null"]},  # null: the plan's own inline templates
    },
}


def _nullable(fragment: Mapping[str, Any]) -> dict[str, Any]:
    """The same schema fragment, also accepting null (null = keep the plan file's value)."""
    nullable = copy.deepcopy(dict(fragment))
    nullable["type"] = ["null", fragment["type"]]
    if "enum" in nullable:  # an enum is checked whatever the type says: null must be listed too
        nullable["enum"] = [None, *nullable["enum"]]
    return nullable


SLO_OVERRIDE_PREFIX = "slo_"

#: Fields an Airflow Param may override, as JSON-schema fragments that allow null.
#: Keys prefixed "slo_" override the matching field of the plan's slo section.
OVERRIDABLE_FIELDS: dict[str, dict[str, Any]] = {
    **{
        field_name: _nullable(PLAN_PROPERTIES[field_name])
        for field_name in (
            "steps", "bake_seconds", "step_timeout_seconds", "window_seconds",
            "min_requests", "consecutive_breaches", "standby_seconds", "flag_backend",
        )
    },
    **{
        SLO_OVERRIDE_PREFIX + slo_field: _nullable(SLO_PROPERTIES[slo_field])
        for slo_field in ("max_error_ratio", "max_latency_ratio_vs_blue")
    },
}

_OVERRIDES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": OVERRIDABLE_FIELDS,
}

PLAN_FILE_VALIDATOR = jsonschema.Draft202012Validator(PLAN_SCHEMA)
PLAN_DICT_VALIDATOR = jsonschema.Draft202012Validator(_PLAN_DICT_SCHEMA)
SLO_VALIDATOR = jsonschema.Draft202012Validator(_SLO_SCHEMA)
TEMPLATE_SET_VALIDATOR = jsonschema.Draft202012Validator(TEMPLATE_SET_SCHEMA)
OVERRIDES_VALIDATOR = jsonschema.Draft202012Validator(_OVERRIDES_SCHEMA)


def describe_schema_errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    """One line per schema error, each starting with the field's path (e.g. "slo.quantiles[0]")."""
    errors = sorted(validator.iter_errors(document), key=lambda error: error.json_path)
    return [_describe_schema_error(error) for error in errors]


def _describe_schema_error(error: jsonschema.ValidationError) -> str:
    field_path = error.json_path.removeprefix("$").removeprefix(".")
    # Errors about the top-level object ("'x' is a required property") already quote the field.
    return f"{field_path}: {error.message}" if field_path else error.message


def as_json_document(value: Any) -> Any:
    """Tuples -> lists, mappings -> dicts, recursively: what JSON schema and XCom expect."""
    if isinstance(value, Mapping):
        return {key: as_json_document(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json_document(item) for item in value]
    return value


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
    violations += load_test_violations(document.get("load_test"))
    if isinstance(document.get("metrics"), Mapping):
        violations += [f"metrics: {problem}" for problem in template_problems(document["metrics"])]
    return violations


DEFAULT_LOAD_WAIT_SECONDS = 0.05


def load_test_violations(load_test: Mapping[str, Any] | None) -> list[str]:
    """Stage 6's cross-field rules: steps that increase, and a capacity target the step load can
    reach at all. A closed loop of U users pausing w s between requests sends < U / w requests/s,
    so a target above that could never be shown, and the stage would halt every run."""
    if not load_test:
        return []
    violations = []
    users = list(load_test["users_per_step"])
    if any(a >= b for a, b in zip(users, users[1:])):
        violations.append(f"load_test.users_per_step must increase strictly; got {users}")
    capacity = load_test["capacity"]
    required = capacity["peak_rps"] * capacity["headroom"]
    wait = load_test.get("wait_seconds", DEFAULT_LOAD_WAIT_SECONDS)
    if wait > 0 and required >= max(users) / wait:
        violations.append(
            f"load_test.capacity.peak_rps x headroom = {required:g} rps cannot be reached by the step load: "
            f"{max(users)} users pausing {wait:g} s send under {max(users) / wait:g} rps; "
            "raise load_test.users_per_step or lower the target")
    duration = len(users) * load_test["step_seconds"]
    if required * duration > load_test["max_requests"]:
        violations.append(
            f"load_test.max_requests {load_test['max_requests']} stops the load before it can hold "
            f"{required:g} rps for the {duration} s of the steps; raise it or lower the target")
    return violations


def refuse_invalid_plan(
    document: Any, validator: jsonschema.protocols.Validator, context: str
) -> None:
    problems = describe_schema_errors(validator, document)
    if not problems:
        problems = _plan_rule_violations(document)
    if problems:
        raise PlanError(f"{context}: " + "; ".join(problems))
