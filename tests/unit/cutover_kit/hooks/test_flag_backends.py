"""Choosing and checking flag backends: the store factory behind Connections, the app-side
evaluator factory, what "every app evaluates this state" means, and green's per-request choice."""

from __future__ import annotations

import json

import pytest

from cutover_kit.flags.model import FlagState, FlagStoreError
from cutover_kit.flags.propagation import app_differences, choose_flag_backend, serving_summary


def test_file_backend_store_comes_from_connection_flagd_default(tmp_path, monkeypatch):
    from cutover_kit.flags.flagd_file import FlagdFileStore
    from cutover_kit.hooks.flags import flag_store

    path = tmp_path / "flagd.json"
    monkeypatch.setenv("AIRFLOW_CONN_FLAGD_DEFAULT", json.dumps({"conn_type": "flagd", "extra": {"path": str(path)}}))
    store = flag_store("file")
    assert isinstance(store, FlagdFileStore) and store.path == path


def test_store_factory_refuses_unknown_backend_and_bad_connections(monkeypatch):
    from cutover_kit.hooks.flags import flag_store

    with pytest.raises(FlagStoreError, match="unknown flag backend 'flagsmith'; expected one of file, unleash"):
        flag_store("flagsmith")
    monkeypatch.delenv("AIRFLOW_CONN_FLAGD_DEFAULT", raising=False)
    with pytest.raises(FlagStoreError, match="flag backend file: Connection 'flagd_default' unavailable"):
        flag_store("file")
    monkeypatch.setenv("AIRFLOW_CONN_FLAGD_DEFAULT", json.dumps({"conn_type": "flagd", "extra": {}}))
    with pytest.raises(FlagStoreError, match="Connection 'flagd_default' has no extra.path"):
        flag_store("file")
    monkeypatch.delenv("AIRFLOW_CONN_UNLEASH_DEFAULT", raising=False)
    with pytest.raises(FlagStoreError, match="flag backend unleash: Connection 'unleash_default' unavailable"):
        flag_store("unleash")


def test_app_evaluator_factory_refuses_bad_environment(tmp_path):
    from sandbox.flag_evaluators import FlagdFileEvaluator, evaluator_from_env

    with pytest.raises(FlagStoreError, match="SANDBOX_FLAG_BACKEND='launchdarkly'; expected one of file, unleash"):
        evaluator_from_env({"SANDBOX_FLAG_BACKEND": "launchdarkly"})
    with pytest.raises(FlagStoreError, match="SANDBOX_FLAGS_FILE is not set"):
        evaluator_from_env({"SANDBOX_FLAG_BACKEND": "file"})
    with pytest.raises(FlagStoreError, match="does not exist"):
        evaluator_from_env({"SANDBOX_FLAGS_FILE": str(tmp_path / "absent.json")})
    with pytest.raises(FlagStoreError, match="SANDBOX_FLAGS_POLL_MS='fast' is not an integer"):
        evaluator_from_env({"SANDBOX_FLAGS_FILE": str(tmp_path / "absent.json"), "SANDBOX_FLAGS_POLL_MS": "fast"})
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(FlagStoreError, match="the flagd provider cannot load it"):
        FlagdFileEvaluator(broken)


GREEN_RAILS = {"color": "green", "backend": "file", "evaluates_flags": True, "features": {"users": False, "orders": False},
               "serves_rails": True, "provider_status": "READY", "rollout_percent": 0, "experiment_treatment_percent": 50}
BLUE = {"color": "blue", "evaluates_flags": False, "backend": None, "features": {"users": False, "orders": False}, "serves_rails": True}


def test_every_app_agrees_or_each_difference_is_named():
    assert app_differences(FlagState.rails(), "file", {"app_blue": BLUE, "app_green": GREEN_RAILS}) == []
    assert serving_summary({"app_blue": BLUE, "app_green": GREEN_RAILS}) == "app_blue rails (no flags), app_green rails"
    # Blue serves Rails whatever the flags say; green lagging behind a step is named flag by flag.
    assert app_differences(FlagState.for_step(25), "file", {"app_blue": BLUE, "app_green": GREEN_RAILS}) == [
        "app_green: green.feature.users evaluates off, want on",
        "app_green: green.feature.orders evaluates off, want on",
        "app_green: green.rollout loaded at 0 %, want 25 %",
    ]
    lagging = {**GREEN_RAILS, "provider_status": "ERROR", "error": "parse error"}
    assert app_differences(FlagState.rails(), "file", {"app_green": lagging}) == ["app_green: flag provider ERROR (parse error)"]
    assert app_differences(FlagState.rails(), "unleash", {"app_green": GREEN_RAILS}) == [
        "app_green: evaluates flags from backend 'file', the cutover writes to 'unleash'"]
    assert app_differences(FlagState.for_step(25), "file", {"app_green": "connection refused"}) == [
        "app_green: no flag report (connection refused)"]
    # A backend that cannot report percentages is judged on the features it evaluates.
    unleash = {**GREEN_RAILS, "backend": "unleash", "rollout_percent": None, "experiment_treatment_percent": None}
    assert app_differences(FlagState.rails(40), "unleash", {"app_green": unleash}) == []


def test_a_crashed_app_counts_as_serving_rails_only_for_the_rails_state():
    from cutover_kit.flags.model import FlagState
    from cutover_kit.flags.propagation import app_differences

    reports = {"app_green": "connection refused"}
    assert app_differences(FlagState.rails(), "file", reports) == []
    assert app_differences(FlagState.for_step(5), "file", reports) == ["app_green: no flag report (connection refused)"]
    assert app_differences(FlagState.rails(), "file", {"app_green": "timed out"}) == ["app_green: no flag report (timed out)"]


def test_a_rollback_without_a_plan_flips_the_store_it_is_given_or_the_one_the_apps_read():
    """The emergency DAG has no plan: its smoke rollback must not write a store no app reads."""
    asked = []

    def reports(found):
        return lambda: asked.append(True) or found

    unleash_green = {**GREEN_RAILS, "backend": "unleash"}
    # The run's plan decides, then the given backend; the apps are not even asked.
    assert choose_flag_backend("unleash", "file", reports({}))[0] == "unleash"
    assert choose_flag_backend(None, "unleash", reports({"app_green": GREEN_RAILS})) == (
        "unleash", "the flag backend given to the task ('unleash')")
    assert asked == []
    # Neither: the one backend the flag-evaluating apps report (blue evaluates none).
    assert choose_flag_backend(None, "", reports({"app_blue": BLUE, "app_green": unleash_green}))[0] == "unleash"
    assert choose_flag_backend(None, None, reports({"app_blue": BLUE, "app_green": GREEN_RAILS}))[0] == "file"
    # No single answer: no guess (the caller skips the flag lever and says why).
    backend, why = choose_flag_backend(None, None, reports({"app_blue": BLUE, "app_green": "connection refused"}))
    assert backend is None and why.endswith("(app_blue: no flags, app_green: connection refused)")
    assert choose_flag_backend(None, None, reports({"a": GREEN_RAILS, "b": unleash_green}))[0] is None
