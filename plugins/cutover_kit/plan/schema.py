"""What a valid plan is: the JSON schema of a plan file, of its dict form and of Param overrides,
and the cross-field rules JSON schema cannot express. Invalid input raises :class:`PlanError`."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema

from cutover_kit.change_windows import ChangeWindowError, ChangeWindows
from cutover_kit.cohorts import source_problems
from cutover_kit.flags.model import FLAG_BACKENDS
from cutover_kit.promql import COLORS, MEASURES, REQUIRED_MEASURES, template_problems
from cutover_kit.routing import DEFAULT_ROUTER, GATEWAY_API_ROUTER, ROUTERS


#: The rest of the "monitor closely" list, each relative to live blue in the same window
#: (cutover_kit.vitals). Optional: null (the default) = measured and reported, not judged.
WHOLE_LIST_LIMITS: dict[str, dict[str, Any]] = {
    "min_throughput_ratio_vs_blue": {
        "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1,
        "description": "Green's requests per second per percent of traffic it is given, at least this "
                       "multiple of blue's (0.9: green serves >= 90 % of the traffic its weight sends it).",
    },
    "min_job_rate_ratio_vs_blue": {
        "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1,
        "description": "Background jobs processed per request served, at least this multiple of blue's.",
    },
    "max_job_failure_ratio_delta_vs_blue": {
        "type": ["number", "null"], "minimum": 0, "maximum": 1,
        "description": "How much green's failed-job ratio may exceed blue's in the same window.",
    },
    "min_websocket_ratio_vs_blue": {
        "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1,
        "description": "Open WebSocket connections per percent of traffic, at least this multiple of blue's.",
    },
    "max_memory_ratio_vs_blue": {
        "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 100,
        "description": "Resident memory of all green's processes, at most this multiple of blue's.",
    },
    "max_cpu_per_request_ratio_vs_blue": {
        "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 100,
        "description": "CPU seconds per request served (all the color's processes), at most this multiple of blue's.",
    },
    "max_db_statement_time_ratio_vs_blue": {
        "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 100,
        "description": "Mean execution time of green's database statements (pg_stat_statements, its own "
                       "role), at most this multiple of blue's.",
    },
}


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
    **WHOLE_LIST_LIMITS,
}

_SLO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": SLO_PROPERTIES,
}

# Kubernetes object name rules (DNS-1123 label and subdomain; a Service name is a DNS-1035 label).
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_SERVICE_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

#: A cohort's name: it lands in HAProxy's map values, log lines and (later) metric labels.
COHORT_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"

#: Longest bake a single step may ask for (a week); the plan-wide bake_seconds stays <= a day.
MAX_STEP_BAKE_SECONDS = 604800

#: One traffic step: a plain percent (5), or {percent: 5, cohorts: [internal, beta], bake_seconds: 86400}.
#: One schema with two types rather than oneOf, so an error names the exact field (steps[0].percent)
#: instead of "is not valid under any of the given schemas": the number keywords only apply to the
#: integer form, the object keywords only to the mapping form.
STEP_SCHEMA: dict[str, Any] = {
    "type": ["integer", "object"],
    "minimum": 1, "maximum": 100,
    "additionalProperties": False,
    "required": ["percent"],
    "properties": {
        "percent": {"type": "integer", "minimum": 1, "maximum": 100},
        "cohorts": {
            "type": "array", "minItems": 1, "maxItems": 20, "uniqueItems": True,
            "items": {"type": "string", "pattern": COHORT_NAME_PATTERN},
        },
        "bake_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_STEP_BAKE_SECONDS},
    },
}

#: Where a cohort's members come from: exactly one of a SQL query on the application database
#: (one column of user ids) or a file under include/ (one user id per line, # comments).
COHORT_SOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sql": {"type": "string", "minLength": 1, "maxLength": 10000},
        "file": {"type": "string", "minLength": 1, "maxLength": 300},
    },
}

_TIME_OF_DAY_SCHEMA: dict[str, Any] = {
    # integer too, so an unquoted 16:00 (YAML reads 960) gets the explanation from the rule check.
    "type": ["string", "integer"],
}

CHANGE_WINDOWS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["timezone", "windows"],
    "properties": {
        "timezone": {"type": "string", "minLength": 1},
        "windows": {
            "type": "array", "minItems": 1, "maxItems": 20,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["days", "start", "end"],
                "properties": {
                    "days": {"type": "array", "minItems": 1, "maxItems": 7, "uniqueItems": True,
                             "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}},
                    "start": _TIME_OF_DAY_SCHEMA,
                    "end": _TIME_OF_DAY_SCHEMA,
                },
            },
        },
    },
    "description": "When a step may advance: windows of local time in one IANA time zone; outside them "
                   "a due step holds (the gate keeps watching), and a rollback is never held.",
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
        "stress": {
            "type": "object", "additionalProperties": False, "required": ["users", "seconds", "recovery_seconds"],
            "description": "After the steps, in the same run: `users` past the last step for `seconds` (how each color "
                           "fails: errors or latency), then `recovery_users` for `recovery_seconds` (does it recover, "
                           "how fast). Green not recovering while blue does halts the stage.",
            "properties": {
                "users": {"type": "integer", "minimum": 2, "maximum": 500,
                          "description": "Users of the stress step; above the last step's."},
                "seconds": {"type": "integer", "minimum": 1, "maximum": 300, "description": "Seconds the stress holds."},
                "recovery_users": {"type": "integer", "minimum": 1, "maximum": 499,
                                   "description": "Light load after the stress (default: the first step's users)."},
                "recovery_seconds": {"type": "integer", "minimum": 3, "maximum": 300,
                                     "description": "Seconds of light load in which the color must come back within the SLO."},
            },
        },
    },
}

#: Go/no-go approvals (cutover_kit.approvals): before which steps a person must approve, who may
#: answer, how long to wait. Unanswered by the timeout = rejected (hold, then roll back; never promote).
APPROVALS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["before_steps", "assigned_users", "timeout_seconds", "auto_approve"],
    "properties": {
        "before_steps": {
            "type": "array", "minItems": 1, "maxItems": 20, "uniqueItems": True,
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
            "description": "Steps (percent) that wait for an approval before their flags and weights move.",
        },
        "assigned_users": {
            "type": "array", "maxItems": 50, "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": "Airflow user ids allowed to answer (the auth manager's user id; 403 for anyone else).",
        },
        "timeout_seconds": {
            "type": "integer", "minimum": 1, "maximum": 604800,
            "description": "Seconds to wait for an answer; then the safe default applies: reject (roll back).",
        },
        "auto_approve": {
            "type": "boolean",
            "description": "Rehearsals only: answer every approval at once, recorded as automatic.",
        },
    },
    "description": "Go/no-go approvals before big steps; the current step's gate keeps judging while one waits.",
}

#: Stage 7 (security audit of each color's stage instance, and passive checks in every stage 11).
SECURITY_SEVERITIES = ("info", "low", "medium", "high", "critical")  # cutover_kit.security.findings.SEVERITIES
SECURITY_SCANNERS = ("schemathesis", "wapiti", "sqlmap", "bandit", "npm_audit")
_ROUTE_PATTERN = r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /\S*$"
SECURITY_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["blocking_severity", "scanners", "scanner_seconds"],
    "description": "Stage 7: the severity that halts, the scanners that must run, their time bound.",
    "properties": {
        "blocking_severity": {
            "enum": list(SECURITY_SEVERITIES),
            "description": "A finding on green (or its code) at or above this halts the run; any check worse "
                           "on green than on blue halts whatever its severity.",
        },
        "scanners": {
            "type": "array", "uniqueItems": True, "items": {"enum": list(SECURITY_SCANNERS)},
            "description": "Scanners that must run; one that is missing, crashes or times out fails the stage.",
        },
        "scanner_seconds": {"type": "integer", "minimum": 5, "maximum": 3600,
                            "description": "Time bound of each scanner run (per color for the ones that scan a color)."},
        "schemathesis_examples": {"type": "integer", "minimum": 1, "maximum": 1000,
                                  "description": "Generated examples per API operation (default 5)."},
        "protected_routes": {
            "type": "array", "maxItems": 100, "uniqueItems": True, "items": {"type": "string", "pattern": _ROUTE_PATTERN},
            "description": "Routes that need authentication ('GET /api/admin/users'); each must refuse a missing "
                           "and a wrong token (401, 403 or 404), besides the routes the OpenAPI documents mark secured.",
        },
        "surface_ignore": {
            "type": "array", "maxItems": 100, "uniqueItems": True, "items": {"type": "string", "pattern": _ROUTE_PATTERN},
            "description": "Routes known to differ between the colors ('GET /api/users/{}'): no surface finding.",
        },
        "smoke_paths": {
            "type": "array", "minItems": 1, "maxItems": 20, "items": {"type": "string", "pattern": r"^/\S*$"},
            "description": "GET paths whose answers stage 11 checks passively on blue and green at every step "
                           "(default: a user, an order, an unknown path; the protected routes are always added).",
        },
    },
}

DEFAULT_ERROR_TRACKING_MIN_EVENTS = 3
EXCEPTION_TYPE_NAME_PATTERN = r"^[A-Za-z_$][\w$]*$"

#: The plan's optional `error_tracking` section: green's new exception types as a gate input (cutover_kit.error_tracking).
ERROR_TRACKING_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "description": "Exception types green raises in a step that blue never raised since the run began "
                   "(cutover_kit.error_tracking): reported, or a FAIL.",
    "properties": {
        "fail_on_new_exception_types": {
            "type": "boolean",
            "description": "true: a new type FAILs the poll; false (default): it is only reported.",
        },
        "min_events": {
            "type": "integer", "minimum": 1, "maximum": 100000,
            "description": f"Events of one type in the step's window before it counts (default {DEFAULT_ERROR_TRACKING_MIN_EVENTS}).",
        },
        "ignore": {
            "type": "array", "uniqueItems": True, "maxItems": 200,
            "items": {"type": "string", "pattern": EXCEPTION_TYPE_NAME_PATTERN},
            "description": "Exception type names (unqualified, e.g. RecordNotFound) never reported.",
        },
    },
}

PLAN_PROPERTIES: dict[str, dict[str, Any]] = {
    "steps": {
        "type": "array", "minItems": 1, "maxItems": 20,
        "items": STEP_SCHEMA,
        "description": "Percent of traffic on green at each step; increasing, ending at 100. A step may be "
                       "{percent, cohorts, bake_seconds}: the named cohorts are on green from that step on.",
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
    "router": {
        "type": "string", "enum": list(ROUTERS),
        "description": "What splits traffic: HAProxy's runtime API (Connection haproxy_default) or a Gateway API "
                       "HTTPRoute's weighted backendRefs through the Kubernetes API (section gateway_api).",
    },
    "gateway_api": {
        "type": "object",
        "additionalProperties": False,
        "required": ["namespace", "http_route", "blue_backend", "green_backend"],
        "properties": {
            # Kubernetes' own name rules, so a typo is refused at plan load, not by the API server mid-run.
            "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS_LABEL,
                          "description": "Namespace of the HTTPRoute (and of its backend Services)."},
            "http_route": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN,
                           "description": "Name of the HTTPRoute whose backendRef weights split the traffic."},
            "blue_backend": {"type": "string", "maxLength": 63, "pattern": _SERVICE_NAME,
                             "description": "Service name of blue's backendRef in that HTTPRoute."},
            "green_backend": {"type": "string", "maxLength": 63, "pattern": _SERVICE_NAME,
                              "description": "Service name of green's backendRef in that HTTPRoute."},
            "kubernetes_conn_id": {"type": "string", "minLength": 1,
                                   "description": "Airflow Connection of the cluster (default kubernetes_default)."},
        },
        "description": "The HTTPRoute the gateway_api router patches; required when router is gateway_api.",
    },
    "cohorts": {
        "type": "object", "maxProperties": 20,
        "propertyNames": {"pattern": COHORT_NAME_PATTERN},
        "additionalProperties": COHORT_SOURCE_SCHEMA,
        "description": "Named groups of users sent to green from the step that names them on, with where "
                       "their members come from ({sql: ...} or {file: include/...}).",
    },
    "change_windows": CHANGE_WINDOWS_SCHEMA,
    "load_test": LOAD_TEST_SCHEMA,
    "approvals": APPROVALS_SCHEMA,
    "security": SECURITY_SCHEMA,
    "error_tracking": ERROR_TRACKING_SCHEMA,
}

# The set that fits the sandbox's two apps (Rails blue, TypeScript green): what a plan that names
# no set is rehearsed against.
DEFAULT_METRIC_TEMPLATES = "sandbox_apps"

#: Plan fields a plan file may leave out, with the value they then take.
#: A plan without `load_test` (or `security`) is valid, but stage 6 (or 7) then fails (never a pass by default).
OPTIONAL_FIELD_DEFAULTS: dict[str, Any] = {
    "flag_backend": "file", "metric_templates": DEFAULT_METRIC_TEMPLATES, "router": DEFAULT_ROUTER, "gateway_api": None,
    "cohorts": {}, "change_windows": None, "load_test": None, "security": None, "approvals": None,
    "error_tracking": None,
}

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
        "gateway_api": {**PLAN_PROPERTIES["gateway_api"], "type": ["object", "null"]},  # null: router is haproxy
        "change_windows": {**CHANGE_WINDOWS_SCHEMA, "type": ["object", "null"]},  # null: no windows
        "approvals": {**APPROVALS_SCHEMA, "type": ["object", "null"]},  # null: no approvals asked
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
    # The whole-list limits are nullable already (null here too keeps the plan file's value).
    **{SLO_OVERRIDE_PREFIX + slo_field: {**copy.deepcopy(fragment), "type": ["null", "number"]}
       for slo_field, fragment in WHOLE_LIST_LIMITS.items()},
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


def step_percent(step: Any) -> int:
    """The percent of a step in either form (5, or {percent: 5, ...})."""
    return step["percent"] if isinstance(step, Mapping) else step


def _steps_increase_to_100(steps: list[int]) -> bool:
    return all(a < b for a, b in zip(steps, steps[1:])) and steps[-1] == 100


def _step_violations(document: Mapping[str, Any]) -> list[str]:
    """Rules of the step mappings: their cohorts are declared and named once, not at 100 %, and a
    step's own bake still covers a whole window."""
    declared = document.get("cohorts") or {}
    violations, first_named = [], {}
    for index, step in enumerate(document["steps"]):
        if not isinstance(step, Mapping):
            continue
        where = f"steps[{index}]"
        for cohort in step.get("cohorts", ()):
            if cohort not in declared:
                violations.append(f"{where}.cohorts: {cohort!r} is not declared in cohorts "
                                  f"(declared: {', '.join(declared) or 'none'})")
            elif cohort in first_named:
                # A cohort is on green from its first step on: naming it again is a mistake.
                violations.append(f"{where}.cohorts: {cohort!r} is already on green from "
                                  f"steps[{first_named[cohort]}]")
            first_named.setdefault(cohort, index)
        if step.get("cohorts") and step["percent"] == 100:
            violations.append(f"{where}.cohorts: at 100 % every user is on green already; name cohorts on an earlier step")
        if "bake_seconds" in step and step["bake_seconds"] < document["window_seconds"]:
            violations.append(f"{where}.bake_seconds must be >= window_seconds ({document['window_seconds']}); "
                              f"got {step['bake_seconds']}")
    if declared and document.get("router", DEFAULT_ROUTER) != DEFAULT_ROUTER:
        # Cohorts and the sticky hash are HAProxy rules (include/haproxy/haproxy.cfg.tmpl); an
        # HTTPRoute's backendRefs only split by weight, so the cohorts would silently not be sent.
        violations.append(f"cohorts: routing by user needs router {DEFAULT_ROUTER}; "
                          f"router {document.get('router')!r} splits by weight only")
    unused = [name for name in declared if name not in first_named]
    if unused:
        violations.append(f"cohorts: {', '.join(unused)} declared but named by no step")
    for name, source in declared.items():
        violations += source_problems(name, source, f"cohorts.{name}")
    return violations


def _plan_rule_violations(document: Mapping[str, Any]) -> list[str]:
    """Cross-field rules JSON schema cannot express; call only on a schema-valid document."""
    steps = [step_percent(step) for step in document["steps"]]
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
    violations += _step_violations(document)
    if document.get("change_windows") is not None:
        try:
            ChangeWindows.from_dict(document["change_windows"])
        except ChangeWindowError as error:
            violations.append(str(error))
    violations += load_test_violations(document.get("load_test"))
    violations += security_violations(document.get("security"))
    if isinstance(document.get("metrics"), Mapping):
        violations += [f"metrics: {problem}" for problem in template_problems(document["metrics"])]
    return violations + _router_violations(document) + _approval_violations(document, steps)


def _approval_violations(document: Mapping[str, Any], steps: list[int]) -> list[str]:
    """An approval guards a step the plan has, after its first (the watch while waiting judges the
    step before it), and a plan that waits for a person names who may answer."""
    approvals = document.get("approvals")
    if not approvals:
        return []
    violations = []
    for index, percent in enumerate(approvals["before_steps"]):
        where = f"approvals.before_steps[{index}]"
        if percent not in steps:
            violations.append(f"{where}: {percent} is not one of the plan's steps {steps}")
        elif percent == steps[0]:
            violations.append(f"{where}: {percent} is the first step; an approval waits while the step before it "
                              "is watched, and before the first step green has no traffic to watch")
    if not approvals["auto_approve"] and not approvals["assigned_users"]:
        violations.append("approvals.assigned_users: name at least one approver when auto_approve is false "
                          "(with nobody assigned, any user could answer)")
    return violations


def _router_violations(document: Mapping[str, Any]) -> list[str]:
    """The gateway_api section goes with router gateway_api, and only with it: a section the chosen
    router ignores would let an operator believe the run patches an HTTPRoute when it drives HAProxy."""
    router = document.get("router", DEFAULT_ROUTER)
    route = document.get("gateway_api")
    if router == GATEWAY_API_ROUTER and not route:
        return [f"gateway_api: required when router is {GATEWAY_API_ROUTER} "
                "(namespace, http_route, blue_backend, green_backend)"]
    if router != GATEWAY_API_ROUTER and route:
        return [f"gateway_api: given but router is {router!r}; set router: {GATEWAY_API_ROUTER} or remove the section"]
    if route and route["blue_backend"] == route["green_backend"]:
        return [f"gateway_api.green_backend: must differ from blue_backend ({route['blue_backend']!r})"]
    return []


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
    stress = load_test.get("stress")
    if stress:
        if stress["users"] <= max(users):
            violations.append(f"load_test.stress.users {stress['users']} must be above the last step's {max(users)} users "
                              "(the stress goes past the knee)")
        recovery_users = stress.get("recovery_users", users[0])
        if recovery_users >= stress["users"]:
            violations.append(f"load_test.stress.recovery_users {recovery_users} must be below stress.users {stress['users']}"
                              " (recovery is a light load)")
    duration = len(users) * load_test["step_seconds"]
    if required * duration > load_test["max_requests"]:
        violations.append(
            f"load_test.max_requests {load_test['max_requests']} stops the load before it can hold "
            f"{required:g} rps for the {duration} s of the steps; raise it or lower the target")
    return violations


def security_violations(security: Mapping[str, Any] | None) -> list[str]:
    """Stage 7's cross-field rule: a route may not be both protected and ignored by the surface check
    (an ignored route would hide the very difference the protection exists for)."""
    if not security:
        return []
    both = sorted(set(security.get("protected_routes") or ()) & set(security.get("surface_ignore") or ()))
    if both:
        return [f"security.surface_ignore: {both} are also protected_routes; a protected route's surface must be compared"]
    return []


def refuse_invalid_plan(
    document: Any, validator: jsonschema.protocols.Validator, context: str
) -> None:
    problems = describe_schema_errors(validator, document)
    if not problems:
        problems = _plan_rule_violations(document)
    if problems:
        raise PlanError(f"{context}: " + "; ".join(problems))
