"""How long a cutover run may take, from a plan's own bounds: pure, no Airflow.

Airflow's Deadline Alerts are fixed per DAG version (the interval is serialized with the DAG), and
the cutover DAG is parsed without knowing which plan a run will choose. So the DAG's deadlines use
the longest bound over every shipped plan (:func:`longest_bounds`): a run of any of them that
overstays its worst case has gone wrong, and the alert names the plan whose bound it is.

Two bounds, both counted from the moment the run was queued:
- ``standby_end``: everything up to the end of stage 13's standby watch, each step at its own step
  timeout, each go/no-go approval at its timeout, the standby watch at its bake plus the same hold;
- ``run_end``: that plus the tail (blue kept warm, data integrity, verdict, post-launch report).

The stages before traffic have no plan timeout of their own except stage 6's load schedule and
stage 7's scanner bound, so they get those plus a fixed allowance for plan checks, the backup and
its verification on production-size data, flags, health checks and the rollback drill.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Stages 1-5 and 8-9 on production-size data (pg_dump + restore + Great Expectations dominate).
PRE_TRAFFIC_ALLOWANCE_SECONDS = 1800
#: After the standby watch: verify_blue_kept_warm, promote, verify_data_integrity, the verdict, the report.
AFTER_STANDBY_ALLOWANCE_SECONDS = 900
COLORS = 2  # stages 6 and 7 measure blue and green


@dataclass(frozen=True)
class RunBounds:
    plan_name: str
    standby_end_seconds: int
    run_end_seconds: int


def load_and_security_seconds(plan: Any) -> int:
    """Stage 6's step schedule plus stress and recovery, and stage 7's scanners at their time bound,
    per color, as if nothing ran in parallel (an upper bound)."""
    load = plan.load_test or {}
    stress = load.get("stress") or {}
    per_color_load = (len(load.get("users_per_step") or ()) * int(load.get("step_seconds") or 0)
                      + int(stress.get("seconds") or 0) + int(stress.get("recovery_seconds") or 0))
    security = plan.security or {}
    per_color_scans = len(security.get("scanners") or ()) * int(security.get("scanner_seconds") or 0)
    return COLORS * (per_color_load + per_color_scans)


def run_bounds(plan: Any) -> RunBounds:
    """The plan's worst-case durations (module doc), in whole seconds."""
    approvals = plan.approvals
    approval_seconds = approvals.timeout_seconds * len(approvals.before_steps) if approvals else 0
    steps = sum(plan.step_timeout_seconds_for(percent) for percent in plan.steps)
    hold = plan.step_timeout_seconds - plan.bake_seconds  # the standby gate's timeout: bake + the same hold
    standby_end = (PRE_TRAFFIC_ALLOWANCE_SECONDS + load_and_security_seconds(plan) + plan.baseline_seconds + steps
                   + approval_seconds + plan.standby_seconds + hold)
    return RunBounds(plan.name, int(standby_end), int(standby_end + AFTER_STANDBY_ALLOWANCE_SECONDS))


def longest_bounds(plans: Iterable[Any]) -> tuple[RunBounds, RunBounds]:
    """(the plan with the longest standby_end, the plan with the longest run_end); ValueError if none."""
    bounds = [run_bounds(plan) for plan in plans]
    if not bounds:
        raise ValueError("no plan to take a run deadline from")
    return (max(bounds, key=lambda b: b.standby_end_seconds), max(bounds, key=lambda b: b.run_end_seconds))

