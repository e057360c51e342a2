"""Unit tests for cutover_kit.plan: plan files, dict form, overrides, Params and stages."""

from __future__ import annotations

import copy
import re
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from cutover_kit.plan import (
    DEFAULT_PLANS_DIR,
    OVERRIDABLE_FIELDS,
    PLAN_SCHEMA,
    CutoverPlan,
    PlanError,
    SLOPolicy,
    green_percent_of_stage,
    list_plans,
    load_plan,
    plan_for_params,
    shortest_promotion_seconds,
    stage_names,
)

DEFAULT_DOCUMENT = yaml.safe_load((DEFAULT_PLANS_DIR / "default.yaml").read_text())


def write_plan(tmp_path: Path, document: object, name: str = "custom") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def mutated(**changes: object) -> dict:
    """default.yaml's document with top-level fields replaced (None = field removed)."""
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    for key, value in changes.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    return document


def with_load_test(**changes: object) -> dict:
    """default.yaml with its load_test section changed (capacity_* keys change the capacity plan)."""
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    for key, value in changes.items():
        if key.startswith("capacity_"):
            document["load_test"]["capacity"][key.removeprefix("capacity_")] = value
        else:
            document["load_test"][key] = value
    return document


def with_security(**changes: object) -> dict:
    """default.yaml with its security section changed."""
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    document["security"].update(changes)
    return document


def with_slo(**changes: object) -> dict:
    document = copy.deepcopy(DEFAULT_DOCUMENT)
    document["slo"].update(changes)
    return document


# --------------------------------------------------------------------------- shipped plans


def test_shipped_plans_are_listed() -> None:
    assert {"default", "rehearsal"} <= set(list_plans())


@pytest.mark.parametrize("name", list_plans())
def test_every_shipped_plan_loads(name: str) -> None:
    plan = load_plan(name)
    assert plan.name == name
    assert plan.steps[-1] == 100
    # A plan without them is valid, but stages 6 and 7 then fail: no shipped plan may leave them out.
    assert plan.load_test and plan.security, f"{name}: load_test and security sections"


def test_default_plan_has_the_production_values() -> None:
    plan = load_plan("default")
    assert plan.steps == (5, 25, 50, 100)
    assert (plan.bake_seconds, plan.step_timeout_seconds, plan.poll_interval_seconds) == (
        300, 900, 1.0)
    assert (plan.window_seconds, plan.min_requests, plan.consecutive_breaches) == (30, 50, 2)
    assert (plan.standby_seconds, plan.rollback_drill_percent, plan.baseline_seconds) == (
        3600, 1, 60)
    assert plan.slo == SLOPolicy()


def test_rehearsal_plan_is_short() -> None:
    plan = load_plan("rehearsal")
    assert plan.steps == (5, 25, 50, 100)
    assert (plan.bake_seconds, plan.step_timeout_seconds, plan.window_seconds) == (10, 40, 10)
    assert (plan.min_requests, plan.standby_seconds, plan.baseline_seconds) == (15, 20, 8)
    assert shortest_promotion_seconds(plan) == 8 + 4 * 10 + 20


def test_load_by_path(tmp_path: Path) -> None:
    path = write_plan(tmp_path, DEFAULT_DOCUMENT, name="copy")
    plan = load_plan(str(path))
    assert plan.name == "copy"
    assert plan.steps == (5, 25, 50, 100)


def test_plans_dir_is_honoured(tmp_path: Path) -> None:
    write_plan(tmp_path, mutated(steps=[10, 100], approvals=None), name="two-steps")
    assert load_plan("two-steps", plans_dir=tmp_path).steps == (10, 100)


def test_slo_section_is_optional_and_defaults_apply(tmp_path: Path) -> None:
    path = write_plan(tmp_path, mutated(slo=None))
    assert load_plan(str(path)).slo == SLOPolicy()


def test_a_plan_may_leave_out_load_test_and_round_trips_with_it(tmp_path: Path) -> None:
    without = load_plan(str(write_plan(tmp_path, mutated(load_test=None))))
    assert without.load_test is None  # valid, but stage 6 then fails (never passes by default)
    shipped = load_plan("rehearsal")
    assert shipped.load_test["capacity"]["peak_rps"] == 10
    assert CutoverPlan.from_dict(shipped.to_dict()) == shipped


def test_the_traffic_rehearsal_plan_is_the_rehearsal_plan_with_lighter_stages_6_and_7() -> None:
    full, light = load_plan("rehearsal").to_dict(), load_plan("rehearsal-traffic").to_dict()
    assert {key for key in full if full[key] != light.get(key)} == {"name", "load_test", "security"}
    assert light["security"]["scanners"] == [] and light["security"]["blocking_severity"] == full["security"]["blocking_severity"]
    assert light["load_test"]["capacity"] == full["load_test"]["capacity"]


def test_a_plan_may_leave_out_security_and_the_shipped_ones_bound_it(tmp_path: Path) -> None:
    without = load_plan(str(write_plan(tmp_path, mutated(security=None))))
    assert without.security is None  # valid, but stage 7 then fails (never passes by default)
    default, rehearsal = load_plan("default"), load_plan("rehearsal")
    assert "npm_audit" in default.security["scanners"]
    # npm audit cannot reach the advisory endpoint here (405): the rehearsal plan leaves it out.
    assert "npm_audit" not in rehearsal.security["scanners"] and rehearsal.security["scanner_seconds"] <= 60
    assert CutoverPlan.from_dict(rehearsal.to_dict()) == rehearsal


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(PLAN_SCHEMA)
    assert PLAN_SCHEMA["$schema"].endswith("2020-12/schema")


# --------------------------------------------------------------------------- bad plan files


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (mutated(steps=[5, 50, 25, 100]),
         "steps must increase strictly and end at 100; got [5, 50, 25, 100]"),
        (mutated(steps=[5, 25, 50]), "end at 100; got [5, 25, 50]"),
        (mutated(steps=[5, 5, 100]), "steps must increase strictly"),
        (mutated(steps=[]), "steps: [] should be non-empty"),
        (mutated(steps=[0, 100]), "steps[0]: 0 is less than the minimum of 1"),
        (mutated(steps=[5, 101]), "steps[1]: 101 is greater than the maximum of 100"),
        (mutated(steps=list(range(1, 21)) + [100]), "steps: "),
        (mutated(steps=[5.5, 100]), "steps[0]: 5.5 is not of type 'integer'"),
        (mutated(rollback_drill_percent=5),
         "rollback_drill_percent must be below the first step (5)"),
        (mutated(rollback_drill_percent=51), "rollback_drill_percent: 51 is greater than"),
        (mutated(rollback_drill_percent=0), "rollback_drill_percent: 0 is less than"),
        (mutated(step_timeout_seconds=299), "step_timeout_seconds must be >= bake_seconds (300)"),
        (mutated(window_seconds=301, step_timeout_seconds=900, bake_seconds=300),
         "window_seconds must be <= bake_seconds (300)"),
        (mutated(bake_seconds=0), "bake_seconds: 0 is less than the minimum of 1"),
        (mutated(bake_seconds=86401), "bake_seconds: 86401 is greater than"),
        (mutated(bake_seconds="300"), "bake_seconds: '300' is not of type 'integer'"),
        (mutated(bake_seconds=True), "bake_seconds: True is not of type 'integer'"),
        (mutated(poll_interval_seconds=0.1), "poll_interval_seconds: 0.1 is less than"),
        (mutated(poll_interval_seconds=61), "poll_interval_seconds: 61 is greater than"),
        (mutated(window_seconds=1), "window_seconds: 1 is less than"),
        (mutated(min_requests=0), "min_requests: 0 is less than"),
        (mutated(min_requests=1_000_001), "min_requests: 1000001 is greater than"),
        (mutated(consecutive_breaches=0), "consecutive_breaches: 0 is less than"),
        (mutated(consecutive_breaches=101), "consecutive_breaches: 101 is greater than"),
        (mutated(standby_seconds=-1), "standby_seconds: -1 is less than"),
        (mutated(baseline_seconds=1), "baseline_seconds: 1 is less than"),
        (mutated(baseline_seconds=None), "'baseline_seconds' is a required property"),
        (mutated(bake=300), "'bake' was unexpected"),
        (mutated(name="default"), "'name' was unexpected"),
        (with_slo(max_error_ratio=1.5), "slo.max_error_ratio: 1.5 is greater than"),
        (with_slo(max_error_ratio_delta_vs_blue=-0.1), "slo.max_error_ratio_delta_vs_blue: -0.1"),
        (with_slo(max_latency_ratio_vs_blue=0.9), "slo.max_latency_ratio_vs_blue: 0.9 is less"),
        (with_slo(latency_floor_seconds=-1), "slo.latency_floor_seconds: -1 is less than"),
        (with_slo(quantiles=[0.95, 1.0]), "slo.quantiles[1]: 1.0 is greater than or equal to"),
        (with_slo(quantiles=[0.0]), "slo.quantiles[0]: 0.0 is less than or equal to"),
        (with_slo(quantiles=[0.95, 0.95]), "slo.quantiles: [0.95, 0.95] has non-unique elements"),
        (with_slo(quantiles=[]), "slo.quantiles: [] should be non-empty"),
        (with_slo(confidence_z=0), "slo.confidence_z: 0 is less than or equal to"),
        (with_slo(p95=0.2), "slo: Additional properties are not allowed ('p95' was unexpected)"),
        (mutated(slo="strict"), "slo: 'strict' is not of type 'object'"),
        # Stage 6's capacity plan: impossible values are refused at stage 1, naming the field.
        (with_load_test(capacity_peak_rps=0), "load_test.capacity.peak_rps: 0 is less than or equal to"),
        (with_load_test(capacity_headroom=0.5), "load_test.capacity.headroom: 0.5 is less than the minimum of 1"),
        (with_load_test(capacity_knee_tolerance=1), "load_test.capacity.knee_tolerance: 1 is greater than or equal to"),
        (with_load_test(max_error_ratio=1), "load_test.max_error_ratio: 1 is greater than or equal to"),
        (with_load_test(users_per_step=[10, 5]), "load_test.users_per_step must increase strictly; got [10, 5]"),
        (with_load_test(users_per_step=[]), "load_test.users_per_step: [] should be non-empty"),
        (with_load_test(capacity_peak_rps=3000),
         "load_test.capacity.peak_rps x headroom = 4500 rps cannot be reached by the step load: 200 users"),
        (with_load_test(max_requests=1000), "load_test.max_requests 1000 stops the load before it can hold 300 rps"),
        (with_load_test(capacity=None), "load_test.capacity: None is not of type 'object'"),
        # Stage 7's section: bad values refused at stage 1, naming the field.
        (with_security(blocking_severity="severe"), "security.blocking_severity: 'severe' is not one of"),
        (with_security(scanners=["nessus"]), "security.scanners[0]: 'nessus' is not one of"),
        (with_security(scanners=["bandit", "bandit"]), "security.scanners: ['bandit', 'bandit'] has non-unique elements"),
        (with_security(scanner_seconds=0), "security.scanner_seconds: 0 is less than the minimum of 5"),
        (with_security(schemathesis_examples=0), "security.schemathesis_examples: 0 is less than the minimum of 1"),
        (with_security(protected_routes=["/api/admin/users"]), "security.protected_routes[0]: '/api/admin/users' does not match"),
        (with_security(surface_ignore=["GET /api/admin/users"]),
         "security.surface_ignore: ['GET /api/admin/users'] are also protected_routes"),
        (with_security(smoke_paths=["api/users/1"]), "security.smoke_paths[0]: 'api/users/1' does not match"),
        (with_security(scan_everything=True), "security: Additional properties are not allowed ('scan_everything' was unexpected)"),
        # The stress phase must go past the last step, and recover under a lighter load.
        (with_load_test(stress={"users": 150, "seconds": 60, "recovery_seconds": 120}),
         "load_test.stress.users 150 must be above the last step's 200 users"),
        (with_load_test(stress={"users": 400, "seconds": 60, "recovery_users": 400, "recovery_seconds": 120}),
         "load_test.stress.recovery_users 400 must be below stress.users 400"),
        (with_load_test(stress={"users": 400, "seconds": 60, "recovery_seconds": 2}),
         "load_test.stress.recovery_seconds: 2 is less than the minimum of 3"),
        (with_load_test(stress={"users": 400, "seconds": 60}), "load_test.stress: 'recovery_seconds' is a required property"),
        (with_load_test(stress={"users": 400, "seconds": 60, "recovery_seconds": 9, "factor": 2}),
         "load_test.stress: Additional properties are not allowed ('factor' was unexpected)"),
    ],
)
def test_bad_plan_file_is_refused_naming_the_field(
    tmp_path: Path, document: dict, expected: str
) -> None:
    path = write_plan(tmp_path, document)
    with pytest.raises(PlanError) as caught:
        load_plan(str(path))
    assert str(caught.value).startswith("plan 'custom': ")
    assert expected in str(caught.value)


def test_every_schema_error_is_reported_at_once(tmp_path: Path) -> None:
    path = write_plan(tmp_path, mutated(bake_seconds=0, min_requests=0))
    message = str(pytest.raises(PlanError, load_plan, str(path)).value)
    assert "bake_seconds: 0" in message and "min_requests: 0" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps: [5, 25\nbake_seconds: 1\n", "is not valid YAML"),
        ("steps: [5, 100]\nsteps: [50, 100]\n", "duplicate key 'steps'"),
        ("", "must contain a YAML mapping at the top level; got an empty file"),
        ("- 5\n- 100\n", "must contain a YAML mapping at the top level; got a list"),
        ("just text\n", "got a str"),
    ],
)
def test_malformed_yaml_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as caught:
        load_plan(str(path))
    assert str(caught.value).startswith("plan 'broken': ")
    assert expected in str(caught.value)


def test_unknown_plan_name_lists_the_available_plans() -> None:
    with pytest.raises(PlanError, match=r"plan 'nope': no file .*nope\.yaml.*default.*rehearsal"):
        load_plan("nope")


def test_missing_plan_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"plan 'absent': no such file"):
        load_plan(str(tmp_path / "absent.yaml"))


def test_non_yaml_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"is not a \.yaml file"):
        load_plan(str(tmp_path / "plan.json"))


@pytest.mark.parametrize("name_or_path", ["", "  ", None, 5])
def test_blank_or_non_string_plan_reference_is_refused(name_or_path: object) -> None:
    with pytest.raises(PlanError, match="expected a plan name or a path"):
        load_plan(name_or_path)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- overrides


def test_none_override_keeps_the_file_value() -> None:
    plan = load_plan("default", {name: None for name in OVERRIDABLE_FIELDS})
    assert plan == load_plan("default")


def test_empty_overrides_keep_the_file() -> None:
    assert load_plan("default", {}) == load_plan("default")


def test_override_replaces_the_file_value() -> None:
    plan = load_plan("default", {"bake_seconds": 60, "steps": [10, 50, 100], "min_requests": None})
    assert plan.bake_seconds == 60
    assert plan.steps == (10, 50, 100)
    assert plan.min_requests == 50
    assert plan.step_timeout_seconds == 900


def test_slo_overrides_reach_the_slo_section() -> None:
    plan = load_plan(
        "default", {"slo_max_error_ratio": 0.05, "slo_max_latency_ratio_vs_blue": 3}
    )
    assert plan.slo.max_error_ratio == 0.05
    assert plan.slo.max_latency_ratio_vs_blue == 3.0
    assert plan.slo.quantiles == (0.95, 0.99)


def test_unknown_override_is_refused_by_name() -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("default", {"bake": 10, "quantiles": [0.5], "bake_seconds": 10})
    message = str(caught.value)
    assert message.startswith("plan 'default': unknown override(s) bake, quantiles;")
    assert "bake_seconds" in message.split("overridable:")[1]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"bake_seconds": "10"}, "overrides.bake_seconds: '10' is not of type 'null', 'integer'"),
        ({"bake_seconds": 0}, "overrides.bake_seconds: 0 is less than the minimum of 1"),
        ({"steps": "5,100"}, "overrides.steps: '5,100' is not of type 'null', 'array'"),
        ({"steps": [0, 100]}, "overrides.steps[0]: 0 is less than the minimum of 1"),
        ({"slo_max_error_ratio": 2}, "overrides.slo_max_error_ratio: 2 is greater than"),
        ({"standby_seconds": -5}, "overrides.standby_seconds: -5 is less than"),
    ],
)
def test_bad_override_value_is_refused_naming_the_field(overrides: dict, expected: str) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("default", overrides)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"steps": [5, 50, 25, 100]},
         "plan 'default' with overrides (steps): steps must increase strictly and end at 100; "
         "got [5, 50, 25, 100]"),
        ({"steps": [1, 100]}, "rollback_drill_percent must be below the first step (1)"),
        ({"bake_seconds": 1000}, "step_timeout_seconds must be >= bake_seconds (1000)"),
        ({"bake_seconds": 20}, "window_seconds must be <= bake_seconds (20)"),
    ],
)
def test_override_that_breaks_a_plan_rule_is_refused(overrides: dict, expected: str) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan("default", overrides)
    assert expected in str(caught.value)


def test_overrides_must_be_a_mapping() -> None:
    with pytest.raises(PlanError, match="overrides must be a mapping; got list"):
        load_plan("default", [("bake_seconds", 10)])  # type: ignore[arg-type]


def test_overridable_fields_are_exactly_the_documented_ones() -> None:
    assert set(OVERRIDABLE_FIELDS) == {
        "steps", "bake_seconds", "step_timeout_seconds", "window_seconds", "min_requests",
        "consecutive_breaches", "standby_seconds", "slo_max_error_ratio",
        "slo_max_latency_ratio_vs_blue", "flag_backend",
        # the whole-list limits (cutover_kit.vitals)
        "slo_min_throughput_ratio_vs_blue", "slo_min_job_rate_ratio_vs_blue", "slo_max_job_failure_ratio_delta_vs_blue",
        "slo_min_websocket_ratio_vs_blue", "slo_max_memory_ratio_vs_blue", "slo_max_cpu_per_request_ratio_vs_blue",
        "slo_max_db_statement_time_ratio_vs_blue",
    }


def test_flag_backend_defaults_to_file_and_can_be_chosen_per_run() -> None:
    assert load_plan("default").flag_backend == "file"
    assert load_plan("default", {"flag_backend": "unleash"}).flag_backend == "unleash"
    assert load_plan("default", {"flag_backend": None}).flag_backend == "file"
    plan = load_plan("rehearsal", {"flag_backend": "unleash"})
    assert CutoverPlan.from_dict(plan.to_dict()) == plan and plan.to_dict()["flag_backend"] == "unleash"


def test_unknown_flag_backend_is_refused_naming_the_field(tmp_path) -> None:
    with pytest.raises(PlanError, match="overrides.flag_backend: 'flagsmith' is not one of"):
        load_plan("default", {"flag_backend": "flagsmith"})
    text = (DEFAULT_PLANS_DIR / "rehearsal.yaml").read_text().replace("flag_backend: file", "flag_backend: redis")
    (tmp_path / "odd.yaml").write_text(text)
    with pytest.raises(PlanError, match="plan 'odd': flag_backend: 'redis' is not one of \\['file', 'unleash'\\]"):
        load_plan(str(tmp_path / "odd.yaml"))


@pytest.mark.parametrize("name", sorted(OVERRIDABLE_FIELDS))
def test_each_override_fragment_accepts_null_and_the_default_value(name: str) -> None:
    fragment = OVERRIDABLE_FIELDS[name]
    jsonschema.Draft202012Validator.check_schema(fragment)
    validator = jsonschema.Draft202012Validator(fragment)
    plan = load_plan("default").to_dict()
    value = plan["slo"][name.removeprefix("slo_")] if name.startswith("slo_") else plan[name]
    assert validator.is_valid(None)
    assert validator.is_valid(value)
    assert not validator.is_valid("text")
    assert fragment["type"][0] == "null"


# --------------------------------------------------------------------------- Params


def test_plan_for_params_picks_plan_and_overrides_and_ignores_other_params() -> None:
    params = {"plan": "rehearsal", "bake_seconds": 12, "min_requests": None, "dry_run": True}
    plan = plan_for_params(params)
    assert plan.name == "rehearsal"
    assert plan.bake_seconds == 12
    assert plan.min_requests == 15


def test_plan_for_params_requires_the_plan() -> None:
    with pytest.raises(PlanError, match="params: 'plan' is required"):
        plan_for_params({"bake_seconds": 12})


def test_plan_for_params_honours_plans_dir(tmp_path: Path) -> None:
    write_plan(tmp_path, DEFAULT_DOCUMENT, name="mine")
    assert plan_for_params({"plan": "mine"}, plans_dir=tmp_path).name == "mine"


# --------------------------------------------------------------------------- dict form


def test_to_dict_is_json_and_round_trips() -> None:
    plan = load_plan("default", {"steps": [10, 50, 100]})
    document = json.loads(json.dumps(plan.to_dict()))
    assert document["steps"] == [10, 50, 100]
    assert document["slo"]["quantiles"] == [0.95, 0.99]
    assert CutoverPlan.from_dict(document) == plan


def test_from_dict_accepts_tuples() -> None:
    plan = load_plan("rehearsal")
    document = plan.to_dict()
    document["steps"] = tuple(document["steps"])
    assert CutoverPlan.from_dict(document) == plan


def test_integral_floats_become_ints() -> None:
    document = load_plan("default").to_dict()
    document["bake_seconds"] = 300.0
    plan = CutoverPlan.from_dict(document)
    assert plan.bake_seconds == 300 and isinstance(plan.bake_seconds, int)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": None}, "'name' is a required property"),
        ({"name": "../etc"}, "name: '../etc' does not match"),
        ({"slo": None}, "'slo' is a required property"),
        ({"steps": [50, 25, 100]}, "plan 'default': steps must increase strictly"),
        ({"window_seconds": "30"}, "window_seconds: '30' is not of type 'integer'"),
    ],
)
def test_from_dict_refuses_bad_dicts_naming_the_field(change: dict, expected: str) -> None:
    document = load_plan("default").to_dict()
    for key, value in change.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    with pytest.raises(PlanError) as caught:
        CutoverPlan.from_dict(document)
    assert expected in str(caught.value)


def test_from_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(PlanError, match="plan: expected a mapping; got list"):
        CutoverPlan.from_dict([])  # type: ignore[arg-type]


def test_constructing_an_invalid_plan_directly_is_refused() -> None:
    fields = {**load_plan("default").to_dict(), "slo": SLOPolicy()}
    fields["steps"] = (5, 25, 50)
    with pytest.raises(PlanError, match="steps must increase strictly and end at 100"):
        CutoverPlan(**fields)


def test_constructing_an_invalid_slo_policy_is_refused() -> None:
    with pytest.raises(PlanError, match=r"slo: quantiles\[0\]: 1.5 is greater"):
        SLOPolicy(quantiles=(1.5,))


def test_plans_are_immutable() -> None:
    plan = load_plan("default")
    with pytest.raises(AttributeError):
        plan.bake_seconds = 1  # type: ignore[misc]


# --------------------------------------------------------------------------- stages


def test_stage_names_follow_the_steps() -> None:
    assert stage_names(load_plan("default")) == [
        "traffic_5", "traffic_25", "traffic_50", "traffic_100", "standby"]
    assert stage_names(load_plan("default", {"steps": [10, 50, 100]})) == [
        "traffic_10", "traffic_50", "traffic_100", "standby"]


@pytest.mark.parametrize(
    ("stage", "percent"), [("traffic_5", 5), ("traffic_100", 100), ("standby", 100)]
)
def test_green_percent_of_stage(stage: str, percent: int) -> None:
    assert green_percent_of_stage(stage) == percent


@pytest.mark.parametrize("stage", ["traffic_0", "traffic_101", "traffic_x", "bake", "", None])
def test_green_percent_of_unknown_stage_is_refused(stage: object) -> None:
    with pytest.raises(PlanError, match="is not traffic_<1..100> or standby"):
        green_percent_of_stage(stage)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- router


GATEWAY_SECTION = {"namespace": "shop", "http_route": "storefront", "blue_backend": "storefront-blue",
                   "green_backend": "storefront-green"}


def test_router_defaults_to_haproxy_and_the_kubernetes_plan_chooses_gateway_api() -> None:
    default = load_plan("default")
    assert (default.router, default.gateway_api) == ("haproxy", None)
    kubernetes = load_plan("kubernetes")
    assert kubernetes.router == "gateway_api" and kubernetes.gateway_api == GATEWAY_SECTION
    assert CutoverPlan.from_dict(kubernetes.to_dict()) == kubernetes
    assert CutoverPlan.from_dict(default.to_dict()) == default


@pytest.mark.parametrize("changes, message", [
    ({"router": "envoy"}, r"router: 'envoy' is not one of \['haproxy', 'gateway_api'\]"),
    ({"router": "gateway_api"}, "gateway_api: required when router is gateway_api"),
    ({"router": "gateway_api", "gateway_api": {k: v for k, v in GATEWAY_SECTION.items() if k != "http_route"}},
     "gateway_api: 'http_route' is a required property"),
    ({"router": "gateway_api", "gateway_api": {**GATEWAY_SECTION, "http_route": "Store_Front"}},
     "gateway_api.http_route: 'Store_Front' does not match"),
    ({"router": "gateway_api", "gateway_api": {**GATEWAY_SECTION, "green_backend": "storefront-blue"}},
     "gateway_api.green_backend: must differ from blue_backend"),
    ({"router": "gateway_api", "gateway_api": {**GATEWAY_SECTION, "weights": {"blue": 1}}},
     r"gateway_api: Additional properties are not allowed \('weights' was unexpected\)"),
    ({"gateway_api": GATEWAY_SECTION}, "gateway_api: given but router is 'haproxy'"),
])
def test_bad_router_input_is_refused_at_load_naming_the_field(tmp_path, changes, message) -> None:
    path = write_plan(tmp_path, mutated(**changes), name="k8s")
    with pytest.raises(PlanError, match=f"plan 'k8s': {message}"):
        load_plan(str(path))


def test_the_dict_form_refuses_a_gateway_router_without_its_route() -> None:
    document = load_plan("kubernetes").to_dict()
    document["gateway_api"] = None
    with pytest.raises(PlanError, match="plan 'kubernetes': gateway_api: required when router is gateway_api"):
        CutoverPlan.from_dict(document)


# --------------------------------------------------------------------------- approvals


def test_the_shipped_plans_ask_approval_before_50_and_100():
    default, rehearsal = load_plan("default"), load_plan("rehearsal")
    assert default.approvals.before_steps == (50, 100) and default.approvals.auto_approve is False
    assert default.approvals.assigned_users  # the default plan waits for a named person
    assert rehearsal.approvals.auto_approve is True
    assert CutoverPlan.from_dict(default.to_dict()) == default


def test_a_plan_without_approvals_asks_none(tmp_path: Path) -> None:
    write_plan(tmp_path, mutated(approvals=None), name="bare")
    plan = load_plan("bare", plans_dir=tmp_path)
    assert plan.approvals is None and plan.to_dict()["approvals"] is None


@pytest.mark.parametrize(
    ("approvals", "message"),
    [
        ({"before_steps": [60], "assigned_users": ["a"], "timeout_seconds": 60, "auto_approve": False},
         "approvals.before_steps[0]: 60 is not one of the plan's steps [5, 25, 50, 100]"),
        ({"before_steps": [5], "assigned_users": ["a"], "timeout_seconds": 60, "auto_approve": False},
         "approvals.before_steps[0]: 5 is the first step"),
        ({"before_steps": [50], "assigned_users": [], "timeout_seconds": 60, "auto_approve": False},
         "approvals.assigned_users: name at least one approver"),
        ({"before_steps": [50], "assigned_users": ["a"], "timeout_seconds": 0, "auto_approve": False},
         "approvals.timeout_seconds: 0 is less than the minimum of 1"),
        ({"before_steps": [50], "assigned_users": ["a"], "auto_approve": False},
         "approvals: 'timeout_seconds' is a required property"),
        ({"before_steps": [50], "assigned_users": ["a"], "timeout_seconds": 60, "auto_approve": "yes"},
         "approvals.auto_approve: 'yes' is not of type 'boolean'"),
    ],
)
def test_bad_approvals_are_refused_naming_the_field(tmp_path: Path, approvals: dict, message: str) -> None:
    write_plan(tmp_path, mutated(approvals=approvals), name="bad")
    with pytest.raises(PlanError, match=re.escape(message)):
        load_plan("bad", plans_dir=tmp_path)


def test_auto_approve_needs_no_named_approver(tmp_path: Path) -> None:
    approvals = {"before_steps": [50], "assigned_users": [], "timeout_seconds": 60, "auto_approve": True}
    write_plan(tmp_path, mutated(approvals=approvals), name="auto")
    assert load_plan("auto", plans_dir=tmp_path).approvals.auto_approve is True


def test_the_attended_rehearsal_is_the_rehearsal_waiting_for_a_person():
    """rehearsal-attended.yaml (the war-room drill, the approvals e2e test) must not drift from the rehearsal."""
    import dataclasses

    attended, rehearsal = load_plan("rehearsal-attended"), load_plan("rehearsal")
    assert attended.approvals.auto_approve is False and attended.approvals.assigned_users == ("admin",)
    assert dataclasses.replace(attended, name="rehearsal", approvals=rehearsal.approvals) == rehearsal


# ----------------------------------------------------------------------------- error_tracking


def test_error_tracking_is_optional_and_round_trips(tmp_path):
    plain = load_plan("default")
    assert plain.error_tracking is None  # report only, with the defaults (cutover_kit.error_tracking)
    section = {"fail_on_new_exception_types": True, "min_events": 5, "ignore": ["RecordNotFound"]}
    plan = load_plan(str(write_plan(tmp_path, mutated(error_tracking=section))))
    assert plan.error_tracking == section
    assert CutoverPlan.from_dict(plan.to_dict()).error_tracking == section


@pytest.mark.parametrize("section, message", [
    ({"fail_on_new_exception_types": "yes"}, "error_tracking.fail_on_new_exception_types"),
    ({"min_events": 0}, "error_tracking.min_events"),
    ({"ignore": ["ActiveRecord::RecordNotFound"]}, "error_tracking.ignore"),
    ({"fail_on_new_types": True}, "fail_on_new_types"),
])
def test_error_tracking_mistakes_are_refused_naming_the_field(tmp_path, section, message):
    with pytest.raises(PlanError, match=re.escape(message)):
        load_plan(str(write_plan(tmp_path, mutated(error_tracking=section))))
