"""Stage 13, full cutover (task group ``stage_13_full_cutover``): the step at 100 % (``step_100``,
with its go/no-go approval first when the plan asks one),
the standby watch (an SLO gate, cutover_kit.sensors) and its branch, then ``promote``.

``step_100`` is wired like every stage-10 step, so its tasks do what stage 10's do. They are
defined here as thin wrappers rather than imported from :mod:`cutover_kit.stages.traffic_migration`
so that every task of this group is found in this module (one hop from the Airflow grid; the DAG
test of stage -> module holds) while the step's logic stays written once, in stage 10's module.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cutover_kit.plan import CutoverPlan
from cutover_kit.stages import traffic_migration
from cutover_kit.previous_cutover import PROMOTED
from cutover_kit.stages._shared import ensure_not_stopped, record_outcome

log = logging.getLogger(__name__)


def set_step_flags(percent: int, plan_task_id: str) -> dict[str, Any]:
    """Features on in green for everyone before the weight reaches 100 % (stage 10's rule)."""
    return traffic_migration.set_step_flags(percent, plan_task_id)


def set_traffic(percent: int, plan_task_id: str) -> dict[str, Any]:
    """Green at 100 %, read back (stage 10's rule: the emergency stop is checked first)."""
    return traffic_migration.set_traffic(percent, plan_task_id)


def smoke_checks(step_label: str, plan_task_id: str | None = None, weights: dict[str, Any] | None = None,
                 acknowledged_writes_file: str | None = None) -> dict[str, Any]:
    """Stage 11 at 100 %: the smoke checks and the first look at the step's rows, with the same
    reflex rollback on a failure."""
    return traffic_migration.smoke_checks(step_label, plan_task_id=plan_task_id, weights=weights,
                                          acknowledged_writes_file=acknowledged_writes_file)


def decide_after_gate(gate_task_id: str, proceed_task_id: str, halt_task_id: str) -> str:
    """After the 100 % gate and after the standby watch: go on, or halt in the rollback group."""
    return traffic_migration.decide_after_gate(gate_task_id, proceed_task_id, halt_task_id)


def decide_after_approval(approval_task_id: str, proceed_task_id: str, halt_task_id: str) -> str:
    """After the go/no-go approval of 100 %: its flags, or the rollback (stage 10's rule)."""
    return traffic_migration.decide_after_approval(approval_task_id, proceed_task_id, halt_task_id)


def record_promotion(plan: dict[str, Any]) -> dict[str, Any]:
    """Stage 13's end: green holds 100 % after the standby watch, read back from the router.
    Recorded as "promoted", so the next run's stage 1 refuses to undo it by accident."""
    from cutover_kit.hooks.levers import router_for_plan

    ensure_not_stopped("promote")
    weights = router_for_plan(CutoverPlan.from_dict(plan)).read_weights()
    if weights.green_percent != 100:
        raise AirflowFailException(f"Refusing to promote: router weights are {weights.to_dict()}, not 100 % green")
    standby = CutoverPlan.from_dict(plan).standby_seconds
    reason = f"Promoted: 100 % green after a {standby} s standby watch, blue kept warm for rollback"
    log.info(reason)
    recorded = record_outcome(PROMOTED, reason)
    return {"verdict": "PASS", "reason": reason, "weights": weights.to_dict(), "outcome_recorded": recorded}
