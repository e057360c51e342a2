"""Cutover plan: how traffic moves from blue to green, and what green must prove at each step.

A plan lives in include/plans/<name>.yaml. A run loads it once (load_plan / plan_for_params),
optionally adjusted by Airflow Params (OVERRIDABLE_FIELDS), and hands it to tasks as a plain
dict (CutoverPlan.to_dict) through XCom. Invalid input of any kind is refused with a PlanError
whose message names the plan and the field, so a bad plan stops a run before traffic moves.

Pure Python on purpose: no Airflow import, no I/O at import time.

Layout: :mod:`~cutover_kit.plan.schema` (what a valid plan is), :mod:`~cutover_kit.plan.model`
(CutoverPlan, SLOPolicy, stages), :mod:`~cutover_kit.plan.loader` (files, Params). The names below
are the package's interface; import them from ``cutover_kit.plan``.
"""

from cutover_kit.plan.loader import (
    DEFAULT_PLANS_DIR,
    DEFAULT_TEMPLATES_DIR,
    list_metric_templates,
    list_plans,
    load_metric_templates,
    load_plan,
    plan_for_params,
)
from cutover_kit.plan.model import (
    STANDBY_STAGE,
    TRAFFIC_STAGE_PREFIX,
    CohortSource,
    CutoverPlan,
    SLOPolicy,
    TrafficStep,
    green_percent_of_stage,
    shortest_promotion_seconds,
    stage_names,
)
from cutover_kit.plan.schema import (
    DEFAULT_METRIC_TEMPLATES,
    FLAG_BACKENDS,
    OPTIONAL_FIELD_DEFAULTS,
    OVERRIDABLE_FIELDS,
    PLAN_SCHEMA,
    PlanError,
    describe_schema_errors,
)

__all__ = [
    "DEFAULT_METRIC_TEMPLATES", "DEFAULT_PLANS_DIR", "DEFAULT_TEMPLATES_DIR", "FLAG_BACKENDS", "OPTIONAL_FIELD_DEFAULTS", "OVERRIDABLE_FIELDS", "PLAN_SCHEMA",
    "STANDBY_STAGE", "TRAFFIC_STAGE_PREFIX", "CohortSource", "CutoverPlan", "PlanError", "SLOPolicy", "TrafficStep",
    "describe_schema_errors", "green_percent_of_stage", "list_metric_templates", "list_plans",
    "load_metric_templates", "load_plan",
    "plan_for_params", "shortest_promotion_seconds", "stage_names",
]
