"""The flag state model: validation, the Rails default, differences and apply-then-verify."""

from __future__ import annotations

import pytest

from cutover_kit.flags.model import (
    FEATURES, FlagState, FlagsNotApplied, apply_flags, feature_flag, serves_new_code,
)


def test_rails_state_turns_every_feature_off():
    state = FlagState.rails()
    assert state.all_rails and state.rollout_percent == 0
    assert not FlagState.for_step(25).all_rails and FlagState.for_step(25).rollout_percent == 25


@pytest.mark.parametrize("kwargs, message", [
    ({"rollout_percent": 101}, "rollout_percent must be an integer in \\[0, 100\\], got 101"),
    ({"rollout_percent": True}, "rollout_percent"),
    ({"experiment_treatment_percent": -1}, "experiment_treatment_percent"),
    ({"features": {"users": True}}, "missing: \\['orders'\\]"),
    ({"features": {"users": True, "orders": True, "billing": False}}, "unknown: \\['billing'\\]"),
])
def test_invalid_state_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FlagState(**kwargs)


def test_differences_name_each_flag():
    found = FlagState({"users": False, "orders": True}, 5)
    assert FlagState.rails().differences(found) == [
        "green.feature.orders: want off, found on", "green.rollout: want 0 %, found 5 %"]
    assert FlagState.rails().differences(FlagState.rails()) == []


def test_unknown_feature_name_is_refused():
    assert [feature_flag(name) for name in FEATURES] == ["green.feature.users", "green.feature.orders"]
    with pytest.raises(ValueError, match="unknown feature area 'billing'"):
        feature_flag("billing")


class _Store:
    name = "memory"

    def __init__(self, lose_writes: bool = False) -> None:
        self.state, self.lose_writes = FlagState.for_step(50), lose_writes

    def read(self) -> FlagState:
        return self.state

    def write(self, desired: FlagState) -> None:
        if not self.lose_writes:
            self.state = desired


def test_apply_verifies_by_reading_back():
    assert apply_flags(_Store(), FlagState.rails()) == FlagState.rails()
    with pytest.raises(FlagsNotApplied, match="memory: flags differ after writing: green.feature.users: want off, found on"):
        apply_flags(_Store(lose_writes=True), FlagState.rails())


def test_new_code_needs_both_the_feature_and_the_rollout():
    assert serves_new_code(True, True) and not serves_new_code(True, False) and not serves_new_code(False, True)
