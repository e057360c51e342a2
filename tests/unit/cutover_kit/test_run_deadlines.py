"""A run's worst-case durations from its plan (pure), which the cutover DAG's Deadline Alerts use."""

from __future__ import annotations

import dataclasses

import pytest

from cutover_kit.plan import list_plans, load_plan
from cutover_kit.run_deadlines import (
    AFTER_STANDBY_ALLOWANCE_SECONDS,
    PRE_TRAFFIC_ALLOWANCE_SECONDS,
    load_and_security_seconds,
    longest_bounds,
    run_bounds,
)


def test_default_plan_bounds_add_up_from_its_own_settings():
    plan = load_plan("default")
    load, security = plan.load_test, plan.security
    per_color = (len(load["users_per_step"]) * load["step_seconds"] + load["stress"]["seconds"]
                 + load["stress"]["recovery_seconds"] + len(security["scanners"]) * security["scanner_seconds"])
    assert load_and_security_seconds(plan) == 2 * per_color
    hold = plan.step_timeout_seconds - plan.bake_seconds
    expected_standby_end = (PRE_TRAFFIC_ALLOWANCE_SECONDS + 2 * per_color + plan.baseline_seconds
                            + sum(plan.step_timeout_seconds_for(p) for p in plan.steps)
                            + plan.approvals.timeout_seconds * len(plan.approvals.before_steps)
                            + plan.standby_seconds + hold)
    bounds = run_bounds(plan)
    assert bounds.standby_end_seconds == expected_standby_end
    assert bounds.run_end_seconds == expected_standby_end + AFTER_STANDBY_ALLOWANCE_SECONDS
    # Every promotion takes at least baseline + bakes + standby: the bound must leave room for it.
    from cutover_kit.plan.model import shortest_promotion_seconds

    assert bounds.standby_end_seconds > shortest_promotion_seconds(plan)


def test_a_plan_without_approvals_load_test_or_security_still_has_a_bound():
    plan = dataclasses.replace(load_plan("rehearsal"), approvals=None, load_test=None, security=None)
    bounds = run_bounds(plan)
    assert load_and_security_seconds(plan) == 0
    assert bounds.standby_end_seconds == (PRE_TRAFFIC_ALLOWANCE_SECONDS + plan.baseline_seconds
                                          + sum(plan.step_timeout_seconds_for(p) for p in plan.steps)
                                          + plan.standby_seconds + plan.step_timeout_seconds - plan.bake_seconds)


def test_longest_bounds_takes_the_worst_plan_and_names_it():
    plans = [load_plan(name) for name in list_plans()]
    standby, run = longest_bounds(plans)
    assert standby.standby_end_seconds == max(run_bounds(p).standby_end_seconds for p in plans)
    assert run.run_end_seconds == max(run_bounds(p).run_end_seconds for p in plans)
    assert run.plan_name in list_plans()
    # A rehearsal plan is far shorter than the production plan's bound.
    assert run_bounds(load_plan("rehearsal")).run_end_seconds < run.run_end_seconds
    with pytest.raises(ValueError, match="no plan"):
        longest_bounds([])
