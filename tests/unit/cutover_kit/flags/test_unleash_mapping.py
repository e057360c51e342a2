"""FlagState <-> Unleash admin-API JSON, on payloads recorded from unleash-server 6.10.1.

tests/unit/data/unleash_features.json holds the four GET .../features/<name> answers after a real
write of FlagState({"users": True, "orders": False}, 25, 30). Each defect test changes one thing
in a copy and expects FlagStoreError naming the flag. The HTTP side runs against a real server in
tests/integration/test_unleash.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.models.connection import Connection

from cutover_kit.flags.model import FEATURES, FlagState, FlagStoreError
from cutover_kit.flags.unleash_store import (
    DIRECT_ROLLOUT, EVERYONE, EXPERIMENT, FLAG_NAMES, VIA_ROUTER, UnleashFlagStore, desired_layout,
    experiment_variants, state_from_features, strategy_matches,
)

RECORDED = json.loads((Path(__file__).parent / "data" / "unleash_features.json").read_text())["features"]
ENV = "development"


def recorded() -> dict[str, Any]:
    return copy.deepcopy(RECORDED)


def env_of(features: dict[str, Any], flag: str) -> dict[str, Any]:
    return next(env for env in features[flag]["environments"] if env["name"] == ENV)


def strategy(features: dict[str, Any], flag: str, title: str) -> dict[str, Any]:
    return next(s for s in env_of(features, flag)["strategies"] if s["title"] == title)


def as_served(state: FlagState) -> dict[str, Any]:
    """Payloads shaped like the recorded ones for `state`: what the server holds after write(state)."""
    features = recorded()
    for flag, layout in desired_layout(state).items():
        env = env_of(features, flag)
        env["enabled"] = layout.enabled
        env["strategies"] = [dict(body, id=f"id-{index}", sortOrder=index)
                             for index, body in enumerate(layout.strategies.values())]
    return features


def test_recorded_payloads_map_to_the_state_that_was_written():
    assert state_from_features(RECORDED, ENV) == FlagState({"users": True, "orders": False}, 25, 30)


def test_the_layout_of_the_written_state_matches_what_the_server_returned():
    for flag, layout in desired_layout(FlagState({"users": True, "orders": False}, 25, 30)).items():
        served = {s["title"]: s for s in env_of(RECORDED, flag)["strategies"]}
        assert set(served) == set(layout.strategies), flag
        assert all(strategy_matches(served[title], body) for title, body in layout.strategies.items()), flag
        assert env_of(RECORDED, flag)["enabled"] == layout.enabled, flag


@pytest.mark.parametrize("state", [
    FlagState.rails(),
    FlagState.for_step(5),
    FlagState.for_step(100, experiment_treatment_percent=0),
    FlagState({"users": False, "orders": True}, 50, 100),
])
def test_round_trip(state):
    assert state_from_features(as_served(state), ENV) == state


def test_rollout_layout_is_router_or_sticky_user_share():
    layout = desired_layout(FlagState.for_step(25))["green.rollout"]
    assert layout.enabled
    assert layout.strategies[VIA_ROUTER]["constraints"][0] == {
        "contextName": "viaRouter", "operator": "IN", "values": ["true"], "caseInsensitive": False, "inverted": False}
    assert layout.strategies[VIA_ROUTER]["parameters"]["rollout"] == "100"
    assert layout.strategies[DIRECT_ROLLOUT]["parameters"] == {
        "rollout": "25", "stickiness": "userId", "groupId": "green.rollout"}


def test_experiment_weights_are_per_mille_with_control_variable():
    assert experiment_variants(30) == [
        {"name": "control", "weight": 700, "weightType": "variable", "stickiness": "userId"},
        {"name": "treatment", "weight": 300, "weightType": "fix", "stickiness": "userId"},
    ]
    assert [v["weight"] for v in experiment_variants(0)] == [1000, 0]
    assert [v["weight"] for v in experiment_variants(100)] == [0, 1000]


def test_a_feature_off_keeps_its_strategy_and_reads_as_off():
    features = recorded()
    env_of(features, "green.feature.users")["enabled"] = False
    assert state_from_features(features, ENV).features == {"users": False, "orders": False}


def _missing_flag(features):
    del features["green.rollout"]


def _foreign_strategy(features):
    env_of(features, "green.feature.orders")["strategies"].append(
        {"id": "x", "name": "flexibleRollout", "title": None, "parameters": {"rollout": "100"}, "constraints": []})


def _rollout_disabled(features):
    env_of(features, "green.rollout")["enabled"] = False


def _router_constraint_changed(features):
    strategy(features, "green.rollout", VIA_ROUTER)["constraints"][0]["values"] = ["true", "false"]


def _direct_rollout_by_session(features):
    strategy(features, "green.rollout", DIRECT_ROLLOUT)["parameters"]["stickiness"] = "sessionId"


def _rollout_not_a_number(features):
    strategy(features, "green.rollout", DIRECT_ROLLOUT)["parameters"]["rollout"] = "lots"


def _feature_strategy_partial(features):
    strategy(features, "green.feature.users", EVERYONE)["parameters"]["rollout"] = "50"


def _feature_strategy_disabled(features):
    strategy(features, "green.feature.users", EVERYONE)["disabled"] = True


def _feature_strategy_missing(features):
    env_of(features, "green.feature.users")["strategies"] = []


def _treatment_weight_not_whole_percent(features):
    variants = strategy(features, "experiment.order_summary", EXPERIMENT)["variants"]
    variants[0]["weight"], variants[1]["weight"] = 695, 305


def _third_variant(features):
    strategy(features, "experiment.order_summary", EXPERIMENT)["variants"].append(
        {"name": "other", "weight": 0, "weightType": "fix", "stickiness": "userId"})


def _variants_not_sticky_by_user(features):
    for variant in strategy(features, "experiment.order_summary", EXPERIMENT)["variants"]:
        variant["stickiness"] = "default"


def _experiment_disabled(features):
    env_of(features, "experiment.order_summary")["enabled"] = False


def _environment_missing(features):
    features["green.feature.orders"]["environments"] = [
        env for env in features["green.feature.orders"]["environments"] if env["name"] != ENV]


def _strategy_in_a_segment(features):
    strategy(features, "green.rollout", DIRECT_ROLLOUT)["segments"] = [7]


@pytest.mark.parametrize("defect, flag, message", [
    (_missing_flag, "green.rollout", "flags missing in Unleash: green.rollout"),
    (_foreign_strategy, "green.feature.orders", "was not set by the cutover"),
    (_rollout_disabled, "green.rollout", "disabled in environment 'development'"),
    (_router_constraint_changed, "green.rollout", "is not 100 % of requests with viaRouter=true"),
    (_direct_rollout_by_session, "green.rollout", "is not a plain rollout by userId"),
    (_rollout_not_a_number, "green.rollout", "rollout 'lots' is not a whole percentage"),
    (_feature_strategy_partial, "green.feature.users", "does not serve 100 % of requests"),
    (_feature_strategy_disabled, "green.feature.users", "does not serve 100 % of requests"),
    (_feature_strategy_missing, "green.feature.users", "missing: \\['cutover: everyone'\\]"),
    (_treatment_weight_not_whole_percent, "experiment.order_summary", "treatment weight 305 of 1000"),
    (_third_variant, "experiment.order_summary", "variants are \\['control', 'other', 'treatment'\\]"),
    (_variants_not_sticky_by_user, "experiment.order_summary", "sticky by userId"),
    (_experiment_disabled, "experiment.order_summary", "disabled in environment"),
    (_environment_missing, "green.feature.orders", "no environment 'development'"),
    (_strategy_in_a_segment, "green.rollout", "segments"),
])
def test_unmappable_state_names_the_flag(defect, flag, message):
    features = recorded()
    defect(features)
    with pytest.raises(FlagStoreError, match=message) as raised:
        state_from_features(features, ENV)
    assert flag in str(raised.value)


def test_flag_names_cover_the_model():
    assert FLAG_NAMES == (*(f"green.feature.{name}" for name in FEATURES), "green.rollout", "experiment.order_summary")


# ------------------------------------------------------------------------ configuration (no I/O)


def test_from_connection_reads_host_token_project_environment():
    conn = Connection(conn_id="unleash_default", conn_type="http", host="127.0.0.1", port=14242,
                      password="*:*.secret", extra=json.dumps({"project": "cutover", "environment": "production"}))
    store = UnleashFlagStore.from_connection(conn)
    assert (store.base_url, store.project, store.environment) == ("http://127.0.0.1:14242", "cutover", "production")
    assert store.name == "unleash http://127.0.0.1:14242 (cutover/production)"


def test_from_connection_defaults_to_the_sandbox_project_and_environment():
    conn = Connection(conn_id="unleash_default", conn_type="http", host="127.0.0.1", port=14242, password="t")
    store = UnleashFlagStore.from_connection(conn)
    assert (store.project, store.environment) == ("default", "development")


@pytest.mark.parametrize("conn, message", [
    (Connection(conn_id="unleash_default", conn_type="http", host="127.0.0.1", port=14242),
     "Connection 'unleash_default' has no password: it must hold the Unleash admin API token"),
    (Connection(conn_id="unleash_default", conn_type="http", password="t"),
     "Connection 'unleash_default': Connection 'unleash_default' has no host"),
    (Connection(conn_id="unleash_default", conn_type="http", host="127.0.0.1", password="t",
                extra=json.dumps({"timeout_seconds": "soon"})),
     "extra.timeout_seconds 'soon' is not a number"),
])
def test_bad_connection_is_refused_before_any_request(conn, message):
    with pytest.raises(FlagStoreError, match=message):
        UnleashFlagStore.from_connection(conn)


@pytest.mark.parametrize("kwargs, message", [
    ({"base_url": "127.0.0.1:14242"}, "is not an http\\(s\\)://host\\[:port\\] address"),
    ({"admin_token": ""}, "no admin API token"),
    ({"environment": ""}, "environment '' is not a valid name"),
    ({"project": "a/b"}, "project 'a/b' is not a valid name"),
    ({"timeout_seconds": 0}, "timeout must be > 0 s"),
])
def test_bad_store_settings_are_refused(kwargs, message):
    settings = {"base_url": "http://127.0.0.1:14242", "admin_token": "*:*.t"} | kwargs
    with pytest.raises(FlagStoreError, match=message):
        UnleashFlagStore(**settings)
