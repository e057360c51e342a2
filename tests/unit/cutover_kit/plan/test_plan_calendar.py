"""Plan steps with cohorts and their own bake, cohort sources and change windows: accepted in both
forms beside plain percents, round-tripped through the dict form, refused naming the field."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from cutover_kit.change_windows import ChangeWindows
from cutover_kit.plan import (
    DEFAULT_PLANS_DIR,
    CohortSource,
    CutoverPlan,
    PlanError,
    TrafficStep,
    load_plan,
    shortest_promotion_seconds,
    stage_names,
)

DEFAULT_DOCUMENT = yaml.safe_load((DEFAULT_PLANS_DIR / "default.yaml").read_text())

CALENDAR = {
    "steps": [
        {"percent": 5, "cohorts": ["internal", "beta"], "bake_seconds": 86400},
        {"percent": 25, "cohorts": ["early_adopters"], "bake_seconds": 86400},
        {"percent": 50, "bake_seconds": 86400},
        100,
    ],
    "cohorts": {
        "internal": {"file": "include/cohorts/internal.txt"},
        "beta": {"sql": "select id from users where beta_opt_in"},
        "early_adopters": {"sql": "with e as (select id from users where early) select id from e;"},
    },
    "change_windows": {
        "timezone": "Europe/Berlin",
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "16:00"}],
    },
}


def calendar_document(**changes: object) -> dict:
    document = {**copy.deepcopy(DEFAULT_DOCUMENT), **copy.deepcopy(CALENDAR)}
    for key, value in changes.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    return document


def load(tmp_path: Path, document: dict) -> CutoverPlan:
    path = tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_plan(str(path))


def test_calendar_plan_loads_with_percents_cohorts_bakes_and_windows(tmp_path: Path) -> None:
    plan = load(tmp_path, calendar_document())
    assert plan.steps == (5, 25, 50, 100)  # the DAG's shape and every reader of `steps` are unchanged
    assert plan.traffic_steps == (
        TrafficStep(5, ("internal", "beta"), 86400), TrafficStep(25, ("early_adopters",), 86400),
        TrafficStep(50, (), 86400), TrafficStep(100))
    assert plan.cohort_names == ("internal", "beta", "early_adopters")
    assert plan.cohorts[0] == CohortSource("internal", file="include/cohorts/internal.txt")
    assert isinstance(plan.change_windows, ChangeWindows) and plan.change_windows.timezone == "Europe/Berlin"
    assert stage_names(plan) == ["traffic_5", "traffic_25", "traffic_50", "traffic_100", "standby"]


def test_step_bake_and_timeout_fall_back_to_the_plan_and_keep_its_slack(tmp_path: Path) -> None:
    plan = load(tmp_path, calendar_document())
    assert (plan.bake_seconds, plan.step_timeout_seconds) == (300, 900)
    assert plan.bake_seconds_for(5) == 86400 and plan.step_timeout_seconds_for(5) == 86400 + 600
    assert plan.bake_seconds_for(100) == 300 and plan.step_timeout_seconds_for(100) == 900
    assert shortest_promotion_seconds(plan) == 60 + 3 * 86400 + 300 + 3600
    with pytest.raises(PlanError, match=r"has no 30 % step \(steps: \[5, 25, 50, 100\]\)"):
        plan.bake_seconds_for(30)


def test_plans_without_the_new_fields_get_empty_defaults() -> None:
    plan = load_plan("default")
    assert plan.cohorts == () and plan.change_windows is None
    assert plan.traffic_steps == tuple(TrafficStep(p) for p in (5, 25, 50, 100))
    document = plan.to_dict()
    assert document["steps"] == [5, 25, 50, 100] and document["cohorts"] == {} and document["change_windows"] is None


def test_a_dict_form_from_before_these_fields_still_loads() -> None:
    document = load_plan("default").to_dict()
    for key in ("cohorts", "change_windows"):
        del document[key]
    assert CutoverPlan.from_dict(document) == load_plan("default")


def test_dict_form_is_json_and_round_trips(tmp_path: Path) -> None:
    plan = load(tmp_path, calendar_document())
    document = json.loads(json.dumps(plan.to_dict()))
    assert document["steps"][0] == {"percent": 5, "cohorts": ["internal", "beta"], "bake_seconds": 86400}
    assert document["steps"][3] == 100
    assert document["change_windows"]["windows"][0]["start"] == "09:00"
    assert CutoverPlan.from_dict(document) == plan


def test_a_step_mapping_with_only_a_percent_is_the_plain_percent(tmp_path: Path) -> None:
    plan = load(tmp_path, calendar_document(steps=[{"percent": 10}, 50, 100], cohorts=None))
    assert plan.traffic_steps == (TrafficStep(10), TrafficStep(50), TrafficStep(100))
    assert plan.to_dict()["steps"] == [10, 50, 100]


def test_plans_differing_only_in_cohorts_are_not_equal(tmp_path: Path) -> None:
    with_cohorts = load(tmp_path, calendar_document())
    steps = copy.deepcopy(CALENDAR["steps"])
    steps[0]["cohorts"] = ["internal"]
    steps[1]["cohorts"] = ["early_adopters", "beta"]
    assert load(tmp_path, calendar_document(steps=steps)) != with_cohorts


def test_dataclasses_replace_keeps_cohorts_or_refuses_to_drop_them(tmp_path: Path) -> None:
    plan = load(tmp_path, calendar_document())
    replaced = dataclasses.replace(plan, min_requests=10)
    assert replaced.traffic_steps == plan.traffic_steps and replaced.min_requests == 10
    with pytest.raises(PlanError, match=r"new steps \[10, 100\] would drop the cohorts"):
        dataclasses.replace(plan, steps=(10, 100))
    plain = load_plan("default")
    assert dataclasses.replace(plain, steps=(10, 50, 100)).steps == (10, 50, 100)


def test_overrides_keep_the_file_cohorts_and_windows(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump(calendar_document()))
    plan = load_plan(str(path), {"min_requests": 20})
    assert plan.min_requests == 20 and plan.traffic_steps[0].cohorts == ("internal", "beta")


def cohort_steps(*extra: dict) -> list:
    return [{"percent": 5, "cohorts": ["internal", "beta"]}, {"percent": 25, "cohorts": ["early_adopters"]}, 50, 100, *extra]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"steps": [{"percent": 0}, 100]}, "steps[0].percent: 0 is less than the minimum of 1"),
        ({"steps": [{"cohorts": ["beta"]}, 100]}, "steps[0]: 'percent' is a required property"),
        ({"steps": [{"percent": 5, "cohort": ["beta"]}, 100]}, "steps[0]: Additional properties are not allowed ('cohort'"),
        ({"steps": [{"percent": 5, "cohorts": []}, 100]}, "steps[0].cohorts: [] should be non-empty"),
        ({"steps": [{"percent": 5, "cohorts": ["Beta"]}, 100]}, "steps[0].cohorts[0]: 'Beta' does not match"),
        ({"steps": [{"percent": 5, "cohorts": ["beta", "beta"]}, 100]}, "steps[0].cohorts: ['beta', 'beta'] has non-unique"),
        ({"steps": [{"percent": 5, "bake_seconds": 0}, 100]}, "steps[0].bake_seconds: 0 is less than the minimum of 1"),
        ({"steps": [{"percent": 5, "bake_seconds": 604801}, 100]}, "steps[0].bake_seconds: 604801 is greater than"),
        ({"steps": [{"percent": 5, "bake_seconds": 10}, 100]}, "steps[0].bake_seconds must be >= window_seconds (30); got 10"),
        ({"steps": ["5", 100]}, "steps[0]: '5' is not of type 'integer', 'object'"),
        ({"steps": [{"percent": 25}, {"percent": 5}, 100]}, "steps must increase strictly and end at 100; got [25, 5, 100]"),
        ({"steps": [{"percent": 5}, 25, {"percent": 25}, 100]}, "steps must increase strictly"),
        ({"steps": [{"percent": 5, "cohorts": ["nobody"]}, 100]},
         "steps[0].cohorts: 'nobody' is not declared in cohorts (declared: internal, beta, early_adopters)"),
        ({"steps": [{"percent": 5, "cohorts": ["internal", "beta"]}, {"percent": 25, "cohorts": ["early_adopters", "beta"]}, 100]},
         "steps[1].cohorts: 'beta' is already on green from steps[0]"),
        ({"steps": [{"percent": 5, "cohorts": ["internal", "beta"]}, {"percent": 100, "cohorts": ["early_adopters"]}]},
         "steps[1].cohorts: at 100 % every user is on green already"),
        ({"steps": [{"percent": 5, "cohorts": ["internal", "beta"]}, 50, 100]}, "cohorts: early_adopters declared but named by no step"),
        ({"cohorts": {"internal": {}, "beta": {"sql": "select 1"}, "early_adopters": {"sql": "select 2"}}},
         "cohorts.internal: give exactly one source, sql (a query on the application database) or file (include/...); got none"),
        ({"cohorts": {"internal": {"sql": "select 1", "file": "include/x.txt"}, "beta": {"sql": "select 1"}, "early_adopters": {"sql": "select 2"}}},
         "cohorts.internal: give exactly one source"),
        ({"cohorts": {"internal": {"file": "/etc/passwd"}, "beta": {"sql": "select 1"}, "early_adopters": {"sql": "select 2"}}},
         "cohorts.internal.file: must be a relative path under include/"),
        ({"cohorts": {"internal": {"file": "include/../secrets.txt"}, "beta": {"sql": "select 1"}, "early_adopters": {"sql": "select 2"}}},
         "cohorts.internal.file: must be a relative path under include/"),
        ({"cohorts": {"internal": {"file": "include/a.txt"}, "beta": {"sql": "delete from users"}, "early_adopters": {"sql": "select 2"}}},
         "cohorts.beta.sql: must be one SELECT (or WITH ... SELECT) statement"),
        ({"cohorts": {"internal": {"file": "include/a.txt"}, "beta": {"sql": "select 1; drop table users"}, "early_adopters": {"sql": "select 2"}}},
         "cohorts.beta.sql: must be one SELECT"),
        ({"cohorts": {"internal": {"url": "http://x"}, "beta": {"sql": "select 1"}, "early_adopters": {"sql": "select 2"}}},
         "cohorts.internal: Additional properties are not allowed ('url' was unexpected)"),
        ({"cohorts": {"Internal": {"sql": "select 1"}}}, "cohorts: 'Internal' does not match"),
        ({"change_windows": {"timezone": "Mars/Olympus", "windows": [{"days": ["mon"], "start": "09:00", "end": "16:00"}]}},
         "change_windows.timezone: unknown time zone 'Mars/Olympus'"),
        ({"change_windows": {"timezone": "Europe/Berlin", "windows": []}}, "change_windows.windows: [] should be non-empty"),
        ({"change_windows": {"timezone": "Europe/Berlin"}}, "change_windows: 'windows' is a required property"),
        ({"change_windows": {"timezone": "Europe/Berlin", "windows": [{"days": ["monday"], "start": "09:00", "end": "16:00"}]}},
         "change_windows.windows[0].days[0]: 'monday' is not one of"),
        ({"change_windows": {"timezone": "Europe/Berlin", "windows": [{"days": ["mon"], "start": "9am", "end": "16:00"}]}},
         "change_windows.windows[0].start: expected a time \"HH:MM\""),
        ({"change_windows": {"timezone": "Europe/Berlin", "windows": [{"days": ["mon"], "start": "09:00", "end": 960}]}},
         "change_windows.windows[0].end: 960 is a number: YAML reads an unquoted time like 16:00 in base 60"),
        ({"change_windows": {"timezone": "Europe/Berlin", "windows": [{"days": ["mon"], "start": "16:00", "end": "09:00"}]}},
         "change_windows.windows[0]: end 09:00 must be after start 16:00"),
        ({"change_windows": {"timezone": "Europe/Berlin", "windows": [{"days": ["mon"], "start": "24:00", "end": "24:00"}]}},
         "change_windows.windows[0].start: 24:00 is only an end"),
    ],
)
def test_bad_calendar_fields_are_refused_naming_the_field(tmp_path: Path, changes: dict, expected: str) -> None:
    with pytest.raises(PlanError) as caught:
        load(tmp_path, calendar_document(**changes))
    assert str(caught.value).startswith("plan 'calendar': ")
    assert expected in str(caught.value)


def test_unquoted_time_in_a_yaml_file_gets_the_base_60_explanation(tmp_path: Path) -> None:
    text = yaml.safe_dump(calendar_document(change_windows=None), sort_keys=False)
    text += "change_windows:\n  timezone: Europe/Berlin\n  windows:\n    - {days: [mon], start: \"09:00\", end: 16:00}\n"
    (tmp_path / "unquoted.yaml").write_text(text)
    with pytest.raises(PlanError, match=r'end: 960 is a number: .*quote it|write it in quotes, e.g. "16:00"'):
        load_plan(str(tmp_path / "unquoted.yaml"))


def test_from_dict_refuses_an_undeclared_cohort(tmp_path: Path) -> None:
    document = load(tmp_path, calendar_document()).to_dict()
    document["cohorts"].pop("beta")
    with pytest.raises(PlanError, match=r"steps\[0\].cohorts: 'beta' is not declared in cohorts"):
        CutoverPlan.from_dict(document)


def test_cohorts_need_the_haproxy_router(tmp_path: Path) -> None:
    document = calendar_document(router="gateway_api", gateway_api={
        "namespace": "shop", "http_route": "storefront", "blue_backend": "rails", "green_backend": "typescript"})
    with pytest.raises(PlanError, match="cohorts: routing by user needs router haproxy; router 'gateway_api' splits by weight only"):
        load(tmp_path, document)
