"""Loading plans: include/plans/<name>.yaml (or a path), read with the strict YAML loader,
validated, then adjusted by Airflow Params (OVERRIDABLE_FIELDS)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cutover_kit.paths import REPO_ROOT
from cutover_kit.plan.model import CutoverPlan, build_plan
from cutover_kit.plan.schema import (
    DEFAULT_METRIC_TEMPLATES,
    OVERRIDABLE_FIELDS,
    OVERRIDES_VALIDATOR,
    PLAN_FILE_VALIDATOR,
    SLO_OVERRIDE_PREFIX,
    TEMPLATE_SET_VALIDATOR,
    PlanError,
    as_json_document,
    describe_schema_errors,
    refuse_invalid_plan,
)
from cutover_kit.promql import COLORS, template_problems
from cutover_kit.yaml_loader import YAML_SUFFIXES, looks_like_path, read_yaml_mapping

DEFAULT_PLANS_DIR = REPO_ROOT / "include" / "plans"
DEFAULT_TEMPLATES_DIR = REPO_ROOT / "include" / "prometheus" / "templates"


def list_plans(plans_dir: Path = DEFAULT_PLANS_DIR) -> list[str]:
    """Names of the plan files in plans_dir, sorted."""
    return sorted(path.stem for path in Path(plans_dir).glob("*.yaml"))


def list_metric_templates(templates_dir: Path = DEFAULT_TEMPLATES_DIR) -> list[str]:
    """Names of the shipped metric template sets, sorted."""
    return sorted(path.stem for path in Path(templates_dir).glob("*.yaml"))


def load_metric_templates(name: str, templates_dir: Path = DEFAULT_TEMPLATES_DIR) -> dict[str, Any]:
    """The {blue: ..., green: ...} templates of the shipped set `name`, validated; PlanError otherwise."""
    context = f"metric templates {name!r}"
    path = Path(templates_dir) / f"{name}.yaml"
    if not path.is_file():
        available = ", ".join(list_metric_templates(templates_dir)) or "none"
        raise PlanError(f"{context}: no file {path} (sets in {templates_dir}: {available})")
    document = read_yaml_mapping(path, context=context, error=PlanError)
    problems = describe_schema_errors(TEMPLATE_SET_VALIDATOR, document) or template_problems(document)
    if problems:
        raise PlanError(f"{context} ({path}): " + "; ".join(problems))
    return {color: document[color] for color in COLORS}


def _resolve_metrics(document: Mapping[str, Any], context: str, templates_dir: Path) -> dict[str, Any]:
    """The document with `metrics` holding the templates every measurement will run: the plan's
    own (`metrics`, then metric_templates is None) or the named set's (default DEFAULT_METRIC_TEMPLATES)."""
    resolved = dict(document)
    if "metrics" in document:
        if "metric_templates" in document:
            raise PlanError(f"{context}: give metric_templates (a shipped set) or metrics (inline), not both")
        resolved["metric_templates"] = None
        return resolved
    name = document.get("metric_templates", DEFAULT_METRIC_TEMPLATES)
    try:
        resolved["metrics"] = load_metric_templates(name, templates_dir)
    except PlanError as error:
        raise PlanError(f"{context}: metric_templates: {error}") from error
    resolved["metric_templates"] = name
    return resolved


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
    problems = describe_schema_errors(OVERRIDES_VALIDATOR, as_json_document(overrides))
    if problems:
        raise PlanError(f"{context}: " + "; ".join(f"overrides.{p}" for p in problems))
    merged = copy.deepcopy(dict(document))
    slo = dict(merged.get("slo", {}))
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith(SLO_OVERRIDE_PREFIX):
            slo[key.removeprefix(SLO_OVERRIDE_PREFIX)] = as_json_document(value)
        else:
            merged[key] = as_json_document(value)
    merged["slo"] = slo
    return merged


def load_plan(
    name_or_path: str,
    overrides: Mapping[str, Any] | None = None,
    plans_dir: Path = DEFAULT_PLANS_DIR,
    templates_dir: Path = DEFAULT_TEMPLATES_DIR,
) -> CutoverPlan:
    """Load, validate and (optionally) override a plan.

    name_or_path is a plan name (-> plans_dir/<name>.yaml) or a path to a .yaml file (anything
    containing a slash or ending in .yaml/.yml). The plan's name is the file's stem.
    """
    path = _plan_path(name_or_path, plans_dir)
    context = f"plan {path.stem!r}"
    document = read_yaml_mapping(path, context=context, error=PlanError)
    # Check the file on its own first, so its mistakes are not blamed on the overrides.
    refuse_invalid_plan(document, PLAN_FILE_VALIDATOR, context)
    if overrides is None:
        return build_plan(path.stem, _resolve_metrics(document, context, templates_dir))
    overridden = _apply_overrides(document, overrides, context)
    applied = [key for key, value in overrides.items() if value is not None]
    if not applied:
        return build_plan(path.stem, _resolve_metrics(document, context, templates_dir))
    refuse_invalid_plan(
        overridden, PLAN_FILE_VALIDATOR, f"{context} with overrides ({', '.join(applied)})"
    )
    return build_plan(path.stem, _resolve_metrics(overridden, context, templates_dir))


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
