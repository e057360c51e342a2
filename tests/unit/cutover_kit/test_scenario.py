"""Unit tests for cutover_kit.scenario: shipped scenarios, bad scenario files, Fault, Scenario."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from cutover_kit.plan import DEFAULT_PLANS_DIR, load_plan
from cutover_kit.plan.schema import WHOLE_LIST_LIMITS
from cutover_kit.scenario import (
    SCENARIO_SCHEMA,
    Fault,
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
)

BASE = {
    "name": "custom",
    "description": "Green fails 20 % of requests at 25 %.",
    "plan": "rehearsal",
    "overrides": {},
    "traffic": {"rps": 40, "max_seconds": 900},
    "expect": {"outcome": "rolled_back", "reason_contains": "5xx"},
    "faults": [
        {"color": "green", "fault": "errors", "error_fraction": 0.2, "at_stage": "traffic_25"}
    ],
}


def write_scenario(tmp_path: Path, document: object, name: str = "custom") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def changed(top: dict | None = None, fault: dict | None = None) -> dict:
    """BASE with top-level and faults[0] fields replaced; a value of None removes the field."""
    document = copy.deepcopy(BASE)
    for target, changes in ((document, top or {}), (document["faults"][0], fault or {})):
        for key, value in changes.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return document


# --------------------------------------------------------------------------- shipped scenarios


def test_shipped_scenarios_are_listed() -> None:
    assert list_scenarios() == ["backfill-under-load", "data-corruption", "green-corrupts-writes", "green-crash",
                                "green-drops-writes", "green-errors", "green-errors-unleash", "green-insecure",
                                "green-insecure-after-promotion", "green-latency",
                                "green-under-capacity", "happy"]


@pytest.mark.parametrize("name", list_scenarios())
def test_every_shipped_scenario_loads(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert 0 < scenario.traffic_rps <= 100
    assert scenario.description


@pytest.mark.parametrize(
    ("name", "outcome", "reason", "faults"),
    [
        ("happy", "promoted", None, []),
        ("green-errors", "rolled_back", "5xx",
         [Fault(color="green", fault="errors", at_stage="traffic_25", error_fraction=0.2)]),
        ("green-latency", "rolled_back", "p95",
         [Fault(color="green", fault="latency", at_stage="traffic_50", added_latency_ms=150)]),
        ("green-crash", "rolled_back", "green",
         [Fault(color="green", fault="crash", at_stage="traffic_5")]),
        ("green-under-capacity", "rolled_back", "Halt at stage 6 (load testing)",
         [Fault(color="green", fault="capacity_limit", after_seconds=1, max_concurrent=1, stage_instances=True),
          Fault(color="green", fault="latency", after_seconds=1, added_latency_ms=100, stage_instances=True)]),
        ("green-corrupts-writes", "failed", "after: Halt at 25 %: data: orders id",
         [Fault(color="green", fault="corrupt_writes", at_stage="traffic_25", fraction=0.5)]),
        ("green-drops-writes", "failed", "after: Halt at 25 %: data: orders id",
         [Fault(color="green", fault="drop_writes", at_stage="traffic_25", fraction=0.5)]),
        ("green-insecure", "rolled_back", "Halt at stage 7 (security audit)",
         [Fault(color="green", fault="insecure", after_seconds=1, weakness="unauthenticated_route", stage_instances=True)]),
        ("green-insecure-after-promotion", "rolled_back", "zap-10037",
         [Fault(color="green", fault="insecure", at_stage="traffic_25", weakness="x_powered_by")]),
    ],
)
def test_shipped_scenarios_say_what_they_test(
    name: str, outcome: str, reason: str | None, faults: list[Fault]
) -> None:
    scenario = load_scenario(name)
    # Faults that arrive during the traffic steps use the plan with lighter stages 6 and 7.
    during_traffic = any(fault.at_stage and fault.at_stage.startswith("traffic_") for fault in faults) and not any(
        fault.fault == "insecure" for fault in faults)
    # The happy control run also sets every whole-list limit (loose), so each is judged at every step.
    assert scenario.plan == load_plan("rehearsal-traffic" if during_traffic else "rehearsal", scenario.overrides), name
    if name == "happy":
        assert all(getattr(scenario.plan.slo, limit) is not None for limit in WHOLE_LIST_LIMITS)
    assert scenario.expect_outcome == outcome
    assert scenario.expect_reason_contains == reason
    assert list(scenario.faults) == faults


def test_the_unleash_rehearsal_is_green_errors_with_the_flags_in_unleash() -> None:
    unleash, file = load_scenario("green-errors-unleash"), load_scenario("green-errors")
    assert unleash.plan == load_plan("rehearsal-traffic", {"flag_backend": "unleash"}) and unleash.plan.flag_backend == "unleash"
    assert (unleash.faults, unleash.expect_outcome, unleash.expect_reason_contains, unleash.traffic_rps) == (
        file.faults, file.expect_outcome, file.expect_reason_contains, file.traffic_rps)


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCENARIO_SCHEMA)


def test_to_dict_is_json_with_the_full_plan() -> None:
    record = json.loads(json.dumps(load_scenario("green-errors").to_dict()))
    assert record["plan"]["name"] == "rehearsal-traffic"
    assert record["faults"] == [BASE["faults"][0]]
    assert record["expect"] == {"outcome": "rolled_back", "reason_contains": "5xx"}


# --------------------------------------------------------------------------- good variations


def test_overrides_reach_the_plan_and_its_stages(tmp_path: Path) -> None:
    document = changed(
        top={"overrides": {"steps": [25, 50, 100], "bake_seconds": 12, "min_requests": None}}
    )
    scenario = load_scenario(str(write_scenario(tmp_path, document)))
    assert scenario.plan.steps == (25, 50, 100)
    assert scenario.plan.bake_seconds == 12
    assert scenario.plan.min_requests == 15
    assert scenario.overrides == {"steps": [25, 50, 100], "bake_seconds": 12, "min_requests": None}


def test_after_seconds_trigger(tmp_path: Path) -> None:
    document = changed(fault={"at_stage": None, "after_seconds": 30})
    fault = load_scenario(str(write_scenario(tmp_path, document))).faults[0]
    assert fault.after_seconds == 30
    assert fault.at_green_percent is None


def test_optional_sections_default_to_empty(tmp_path: Path) -> None:
    document = changed(top={"overrides": None, "faults": None})
    document["expect"] = {"outcome": "promoted"}
    scenario = load_scenario(str(write_scenario(tmp_path, document)))
    assert scenario.faults == ()
    assert scenario.overrides == {}
    assert scenario.expect_reason_contains is None


def test_plan_given_as_a_path_is_relative_to_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    shutil.copy(DEFAULT_PLANS_DIR / "rehearsal.yaml", tmp_path / "plans" / "local.yaml")
    path = write_scenario(tmp_path, changed(top={"plan": "plans/local.yaml"}))
    assert load_scenario(str(path)).plan.name == "local"


def test_scenarios_dir_and_plans_dir_are_honoured(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    shutil.copy(DEFAULT_PLANS_DIR / "rehearsal.yaml", tmp_path / "plans" / "quick.yaml")
    write_scenario(tmp_path, changed(top={"plan": "quick"}))
    scenario = load_scenario("custom", scenarios_dir=tmp_path, plans_dir=tmp_path / "plans")
    assert scenario.plan.name == "quick"
    assert list_scenarios(tmp_path) == ["custom"]


# --------------------------------------------------------------------------- bad scenario files


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (changed(fault={"at_stage": "traffic_30"}),
         "scenario custom: faults[0].at_stage 'traffic_30' is not a stage of plan 'rehearsal' "
         "(stages: traffic_5, traffic_25, traffic_50, traffic_100, standby)"),
        (changed(top={"overrides": {"steps": [10, 50, 100]}}),
         "faults[0].at_stage 'traffic_25' is not a stage of plan 'rehearsal' "
         "(stages: traffic_10, traffic_50, traffic_100, standby)"),
        (changed(fault={"color": "purple"}), "faults[0].color: 'purple' is not one of"),
        (changed(fault={"fault": "melt"}), "faults[0].fault: 'melt' is not one of"),
        (changed(fault={"color": None}), "faults[0]: 'color' is a required property"),
        (changed(fault={"after_seconds": 5}),
         "faults[0]: give exactly one of at_stage or after_seconds (or neither with stage_instances: true); got both"),
        (changed(fault={"at_stage": None}),
         "faults[0]: give exactly one of at_stage or after_seconds (or neither with stage_instances: true); got neither"),
        (changed(fault={"at_stage": None, "after_seconds": 0}),
         "faults[0].after_seconds: 0 is less than or equal to"),
        (changed(fault={"at_stage": None, "after_seconds": 900}),
         "faults[0].after_seconds 900 is not before traffic.max_seconds 900"),
        (changed(fault={"error_fraction": None}),
         "faults[0].error_fraction is required for fault 'errors'"),
        (changed(fault={"added_latency_ms": 100}),
         "faults[0].added_latency_ms is not allowed for fault 'errors' (it takes error_fraction)"),
        (changed(fault={"fault": "latency"}),
         "faults[0].added_latency_ms is required for fault 'latency'"),
        (changed(fault={"fault": "crash"}),
         "faults[0].error_fraction is not allowed for fault 'crash' (it takes no parameters)"),
        (changed(fault={"error_fraction": 0}), "faults[0].error_fraction: 0 is less than or equal"),
        (changed(fault={"error_fraction": 1.5}), "faults[0].error_fraction: 1.5 is greater than"),
        (changed(fault={"error_fraction": None, "fault": "latency", "added_latency_ms": 0}),
         "faults[0].added_latency_ms: 0 is less than the minimum of 1"),
        (changed(fault={"error_fraction": None, "fault": "latency", "added_latency_ms": 60001}),
         "faults[0].added_latency_ms: 60001 is greater than"),
        (changed(fault={"at_stage": 25}), "faults[0].at_stage: 25 is not of type 'string'"),
        (changed(fault={"error_fraction": None, "fault": "corrupt_writes"}),
         "faults[0].fraction is required for fault 'corrupt_writes'"),
        (changed(fault={"error_fraction": None, "fault": "drop_writes", "fraction": 0}),
         "faults[0].fraction: 0 is less than or equal to the minimum of 0"),
        (changed(fault={"fault": "drop_writes", "fraction": 0.5}),
         "faults[0].error_fraction is not allowed for fault 'drop_writes' (it takes fraction)"),
        (changed(fault={"error_fraction": None, "fault": "corrupt_writes", "fraction": 0.5, "color": "blue"}),
         "faults[0].fault 'corrupt_writes' exists in green's app only; got color 'blue'"),
        (changed(fault={"severity": "high"}), "faults[0]: Additional properties are not allowed"),
        (changed(top={"expect": {"outcome": "success"}}), "expect.outcome: 'success' is not"),
        (changed(top={"expect": {"reason_contains": "5xx"}}),
         "expect: 'outcome' is a required property"),
        (changed(top={"expect": None}), "'expect' is a required property"),
        (changed(top={"traffic": {"rps": 0, "max_seconds": 900}}), "traffic.rps: 0 is less than"),
        (changed(top={"traffic": {"rps": 40}}), "traffic: 'max_seconds' is a required property"),
        (changed(top={"traffic": {"rps": 40, "max_seconds": 60}}),
         "traffic.max_seconds 60 is shorter than plan 'rehearsal' can take to promote (68 s"),
        (changed(top={"description": ""}), "description: '' should be non-empty"),
        (changed(top={"name": "other"}), "name 'other' must match the file name 'custom'"),
        (changed(top={"owner": "me"}), "('owner' was unexpected)"),
        (changed(top={"overrides": {"bake": 5}}), "overrides: Additional properties are not"),
        (changed(top={"overrides": {"bake_seconds": "5"}}), "overrides.bake_seconds: '5' is"),
        (changed(top={"overrides": {"bake_seconds": 100}}),
         "plan 'rehearsal' with overrides (bake_seconds): "
         "step_timeout_seconds must be >= bake_seconds (100)"),
        (changed(top={"plan": "nope"}), "plan 'nope': no file"),
        (changed(top={"faults": "none"}), "faults: 'none' is not of type 'array'"),
    ],
)
def test_bad_scenario_is_refused_naming_the_field(
    tmp_path: Path, document: dict, expected: str
) -> None:
    path = write_scenario(tmp_path, document)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path))
    assert str(caught.value).startswith("scenario custom: ")
    assert expected in str(caught.value)


def test_problems_of_several_faults_are_reported_together(tmp_path: Path) -> None:
    document = copy.deepcopy(BASE)
    document["faults"].append({"color": "blue", "fault": "crash", "at_stage": "traffic_7"})
    document["faults"][0]["at_stage"] = "traffic_30"
    message = str(pytest.raises(ScenarioError, load_scenario,
                                str(write_scenario(tmp_path, document))).value)
    assert "faults[0].at_stage 'traffic_30'" in message
    assert "faults[1].at_stage 'traffic_7'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: custom\nfaults: [\n", "is not valid YAML"),
        ("name: custom\nname: other\n", "duplicate key 'name'"),
        ("", "got an empty file"),
        ("- happy\n", "got a list"),
    ],
)
def test_malformed_yaml_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path))
    assert str(caught.value).startswith("scenario custom: ")
    assert expected in str(caught.value)


def test_unknown_scenario_name_lists_the_scenarios() -> None:
    with pytest.raises(ScenarioError, match=r"scenario nope: no such file .*happy"):
        load_scenario("nope")


@pytest.mark.parametrize("name_or_path", ["", None])
def test_blank_scenario_reference_is_refused(name_or_path: object) -> None:
    with pytest.raises(ScenarioError, match="expected a scenario name or a path"):
        load_scenario(name_or_path)  # type: ignore[arg-type]


def test_list_scenarios_of_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no directory"):
        list_scenarios(tmp_path / "absent")


# --------------------------------------------------------------------------- Fault and Scenario


@pytest.mark.parametrize(
    ("stage", "percent"), [("traffic_5", 5), ("traffic_25", 25), ("standby", 100)]
)
def test_fault_at_green_percent(stage: str, percent: int) -> None:
    assert Fault(color="green", fault="crash", at_stage=stage).at_green_percent == percent


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"color": "red", "fault": "crash", "at_stage": "standby"}, "fault: color: 'red'"),
        ({"color": "green", "fault": "errors", "at_stage": "standby"},
         "fault: error_fraction is required for fault 'errors'"),
        ({"color": "green", "fault": "crash", "at_stage": "standby", "after_seconds": 3},
         "fault: give exactly one of at_stage or after_seconds (or neither with stage_instances: true); got both"),
        ({"color": "green", "fault": "crash", "at_stage": "bake"},
         "fault: at_stage: stage 'bake' is not traffic_<1..100> or standby"),
    ],
)
def test_constructing_an_invalid_fault_is_refused(fields: dict, expected: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        Fault(**fields)
    assert expected in str(caught.value)


def test_constructing_an_invalid_scenario_is_refused() -> None:
    good = load_scenario("green-errors")
    fields = {name: getattr(good, name) for name in good.__dataclass_fields__}
    fields["faults"] = (Fault(color="green", fault="crash", at_stage="traffic_30"),)
    with pytest.raises(ScenarioError, match=r"scenario green-errors: faults\[0\]\.at_stage"):
        Scenario(**fields)
    fields["faults"] = ()
    fields["expect_outcome"] = "maybe"
    with pytest.raises(ScenarioError, match="expect.outcome: 'maybe' is not one of"):
        Scenario(**fields)


def test_database_section_is_validated(tmp_path) -> None:
    scenario = load_scenario("data-corruption")
    assert scenario.corrupt_rows_after_backfill == 25
    bad = tmp_path / "bad-db.yaml"
    bad.write_text(
        "name: bad-db\ndescription: x\nplan: rehearsal\ntraffic: {rps: 10, max_seconds: 900}\n"
        "expect: {outcome: rolled_back}\ndatabase: {corrupt_after_backfill: {rows: 0}}\n"
    )
    with pytest.raises(ScenarioError, match="corrupt_after_backfill"):
        load_scenario(str(bad))


def test_capacity_limit_takes_max_concurrent_and_may_be_for_the_stage_instances_only() -> None:
    stage_only = Fault(color="green", fault="capacity_limit", max_concurrent=2, stage_instances=True)
    assert not stage_only.on_live_instances and stage_only.app_fault_body() == {"max_concurrent": 2}
    assert stage_only.to_dict() == {"color": "green", "fault": "capacity_limit", "max_concurrent": 2, "stage_instances": True}
    both = Fault(color="green", fault="capacity_limit", max_concurrent=2, after_seconds=1, stage_instances=True)
    assert both.on_live_instances
    with pytest.raises(ScenarioError, match="max_concurrent is required for fault 'capacity_limit'"):
        Fault(color="green", fault="capacity_limit", after_seconds=1)
    with pytest.raises(ScenarioError, match="max_concurrent is not allowed for fault 'errors'"):
        Fault(color="green", fault="errors", error_fraction=0.1, max_concurrent=2, after_seconds=1)
    with pytest.raises(ScenarioError, match="max_concurrent"):
        Fault(color="green", fault="capacity_limit", max_concurrent=0, stage_instances=True)
    with pytest.raises(ScenarioError, match="got neither"):
        Fault(color="green", fault="capacity_limit", max_concurrent=2)


def test_insecure_takes_one_known_weakness():
    fault = Fault(color="green", fault="insecure", weakness="stack_trace", stage_instances=True)
    assert fault.app_fault_body() == {"weakness": "stack_trace"}
    with pytest.raises(ScenarioError, match="weakness is required for fault 'insecure'"):
        Fault(color="green", fault="insecure", stage_instances=True)
    with pytest.raises(ScenarioError, match="weakness"):
        Fault(color="green", fault="insecure", weakness="sql_injection", stage_instances=True)


def test_write_faults_speak_the_apps_field_names_and_exist_on_green_only():
    from sandbox.faults import fault_body

    for kind in ("corrupt_writes", "drop_writes"):
        fault = Fault(color="green", fault=kind, fraction=0.25, stage_instances=True)
        # The scenario's body and the sandbox's fault control must send the same field to green.
        assert fault.app_fault_body() == {f"{kind}_fraction": 0.25} == fault_body(kind, None, None, fraction=0.25)
        with pytest.raises(ScenarioError, match=f"fault '{kind}' exists in green's app only"):
            Fault(color="blue", fault=kind, fraction=0.25, at_stage="traffic_25")
