"""The flagd file store: rendering and parsing, refusals that name the file and the problem,
atomic and idempotent writes, and the real OpenFeature flagd provider evaluating what it wrote."""

from __future__ import annotations

import json
import os
import time

import pytest

from cutover_kit.flags.flagd_file import FlagdFileStore, parse, render, render_bytes
from cutover_kit.flags.model import FlagState, FlagStoreError, FlagsNotApplied, apply_flags

STATES = [
    FlagState.rails(),
    FlagState.for_step(5),
    FlagState.for_step(100, experiment_treatment_percent=0),
    FlagState({"users": True, "orders": False}, 37, 90),
]


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.describe())
def test_render_then_parse_is_the_same_state(state, tmp_path):
    assert parse(render(state)) == state
    store = FlagdFileStore(tmp_path / "flags" / "flagd.json")
    assert apply_flags(store, state) == state
    assert store.read() == state


def test_rails_default_is_every_default_variant_rails_safe():
    flags = render(FlagState.rails())["flags"]
    assert {name: flag["defaultVariant"] for name, flag in flags.items()} == {
        "green.feature.users": "off", "green.feature.orders": "off", "green.rollout": "off",
        "experiment.order_summary": "control"}
    assert all(flag["state"] == "ENABLED" for flag in flags.values())
    # Even a step's file keeps "off" as the rollout's default: a request nobody can place is Rails.
    assert render(FlagState.for_step(50))["flags"]["green.rollout"]["defaultVariant"] == "off"


def test_same_state_same_bytes_and_the_write_is_atomic(tmp_path):
    store = FlagdFileStore(tmp_path / "flagd.json")
    store.write(FlagState.for_step(25))
    first = store.path.read_bytes()
    store.write(FlagState.for_step(25))
    assert store.path.read_bytes() == first == render_bytes(FlagState.for_step(25))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flagd.json"], "no temporary file left behind"
    assert store.path.stat().st_mode & 0o777 == 0o644


def test_each_write_moves_the_mtime_forward(tmp_path):
    """flagd's file watcher reloads only on a strictly newer mtime; rapid writes must not collide."""
    store = FlagdFileStore(tmp_path / "flagd.json")
    stamps = []
    for percent in (5, 25, 50, 100, 0):
        store.write(FlagState.for_step(percent))
        stamps.append(os.path.getmtime(store.path))
    assert all(later > earlier for earlier, later in zip(stamps, stamps[1:])), stamps


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    (json.dumps({"flags": {"my.flag": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}}}),
     "refusing a foreign flag file"),
])
def test_malformed_or_foreign_file_is_refused_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "flagd.json"
    path.write_text(content)
    with pytest.raises(FlagStoreError, match=problem) as caught:
        FlagdFileStore(path).read()
    assert str(path) in str(caught.value)


def _edited(tmp_path, edit):
    document = render(FlagState.for_step(25))
    edit(document["flags"])
    path = tmp_path / "flagd.json"
    path.write_text(json.dumps(document))
    return FlagdFileStore(path)


@pytest.mark.parametrize("edit, problem", [
    (lambda flags: flags.pop("green.rollout"), "flags missing: green.rollout; unknown flags: none"),
    (lambda flags: flags.update({"green.feature.billing": flags["green.feature.users"]}), "unknown flags: green.feature.billing"),
    (lambda flags: flags["green.feature.users"].update(defaultVariant="maybe"), "defaultVariant 'maybe'"),
    (lambda flags: flags["green.rollout"]["metadata"].update(rollout_percent=140), "rollout_percent must be an integer in \\[0, 100\\]"),
    (lambda flags: flags["green.rollout"]["metadata"].pop("rollout_percent"), "missing field 'rollout_percent'"),
    # The metadata says 25 % but the targeting now puts 90 % on green: the apps would evaluate 90.
    (lambda flags: flags["green.rollout"]["targeting"]["if"][4]["fractional"][0].__setitem__(1, 90),
     "green.rollout differ from what cutover_kit.flags.flagd_file writes"),
    (lambda flags: flags["experiment.order_summary"].update(state="DISABLED"), "experiment.order_summary differ"),
])
def test_hand_edited_file_is_refused_naming_the_flag(tmp_path, edit, problem):
    with pytest.raises(FlagStoreError, match=problem):
        _edited(tmp_path, edit).read()


def test_missing_file_and_unwritable_directory_are_clear_errors(tmp_path):
    with pytest.raises(FlagStoreError, match="no such file \\(the sandbox launcher writes it at `up`\\)"):
        FlagdFileStore(tmp_path / "absent.json").read()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(FlagStoreError, match="cannot write in"):
        FlagdFileStore(blocker / "flagd.json").write(FlagState.rails())


def test_a_write_that_does_not_stick_is_reported_flag_by_flag(tmp_path):
    class LosesFeatureWrites(FlagdFileStore):
        def write(self, desired):
            super().write(FlagState(dict.fromkeys(desired.features, False), desired.rollout_percent,
                                    desired.experiment_treatment_percent))

    with pytest.raises(FlagsNotApplied) as caught:
        apply_flags(LosesFeatureWrites(tmp_path / "flagd.json"), FlagState.for_step(50))
    assert caught.value.differences == ["green.feature.users: want on, found off", "green.feature.orders: want on, found off"]


# ----------------------------------------------------------------------------- the real provider


@pytest.fixture
def evaluator(tmp_path):
    from sandbox.flag_evaluators import FlagdFileEvaluator

    store = FlagdFileStore(tmp_path / "flagd.json")
    apply_flags(store, FlagState.rails())
    evaluator = FlagdFileEvaluator(store.path, poll_ms=20)
    yield store, evaluator
    evaluator.close()


def _wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_flagd_provider_evaluates_what_the_store_wrote(evaluator):
    store, flags = evaluator
    assert not flags.feature_on("users", 1, True) and not flags.feature_on("orders", 1, True)
    assert flags.rollout_on(None, True), "a routed request was already chosen for green by the router"
    assert not any(flags.rollout_on(user, False) for user in range(200)), "0 % of direct users"

    apply_flags(store, FlagState({"users": True, "orders": False}, 30, 50))
    assert _wait_for(lambda: flags.feature_on("users", None, False))
    assert not flags.feature_on("orders", None, False)
    share = sum(flags.rollout_on(user, False) for user in range(1, 2001)) / 2000
    assert 0.25 < share < 0.35, share
    assert not flags.rollout_on(None, False), "a direct request without a user id stays on Rails"
    # Sticky: the same user always gets the same answer, and the experiment splits users.
    assert all(flags.rollout_on(user, False) == flags.rollout_on(user, False) for user in range(1, 200))
    variants = [flags.experiment_variant(user) for user in range(1, 401)]
    assert set(variants) == {"control", "treatment"} and variants == [flags.experiment_variant(u) for u in range(1, 401)]
    assert flags.experiment_variant(None) == "control"
    assert flags.loaded_state()["rollout_percent"] == 30


def test_a_file_that_turns_malformed_keeps_the_last_good_flags_and_reports_error(evaluator):
    from sandbox.flag_evaluators import evaluated_flags

    store, flags = evaluator
    apply_flags(store, FlagState.for_step(100))
    assert _wait_for(lambda: flags.feature_on("users", None, False))
    time.sleep(0.05)  # past the filesystem's coarse mtime tick, so the watcher sees a newer file
    store.path.write_text("{broken")
    assert _wait_for(lambda: evaluated_flags(flags, "file")["provider_status"] == "ERROR")
    assert flags.feature_on("users", None, False), "the last good file stays in force"
