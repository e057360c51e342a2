"""Stage 8, rollback procedures (task group ``stage_08_rollback_procedures``): a drill before any
traffic moves. A little traffic goes to green, is rolled back and verified by read-back, and the
rollback is timed against the budget a real one must meet.

On a re-run on purpose (stage 1's ``check_previous_cutover`` judged ``starts_over``: the operator
gave ``allow_rerun_reason`` although green had traffic or the last run promoted), the drill is
the real thing: green's current share goes back to 0 %, timed and verified the same way, and the
steps then climb again from blue. Without that judgement a green with traffic is refused, as
before: a drill must never be what undoes a cutover."""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cutover_kit.plan import CutoverPlan
from cutover_kit.stages._shared import ensure_not_stopped

log = logging.getLogger(__name__)

# The brief's budget for putting traffic back on blue; the drill fails if a real rollback would miss it.
TRAFFIC_ROLLBACK_BUDGET_SECONDS = 60.0


def rollback_drill(plan: dict[str, Any], previous_cutover_task_id: str | None = None) -> dict[str, Any]:
    """Put a little traffic on green, roll it back, verify by read-back, and time the rollback.
    Stage 1's verdict is pulled by task id (an XComArg would add an edge past the stage chain)."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.levers import router_for_plan

    ensure_not_stopped("run the rollback drill")
    parsed = CutoverPlan.from_dict(plan)
    drill_percent = parsed.rollback_drill_percent
    previous = (get_current_context()["ti"].xcom_pull(task_ids=previous_cutover_task_id)
                if previous_cutover_task_id else None) or {}
    starts_over = bool(previous.get("starts_over"))
    router = router_for_plan(parsed)
    log.info("Router: %s", router.describe())
    before = router.read_weights()
    if before.green != 0 and not starts_over:
        raise AirflowFailException(
            f"Rollback drill refused: green already has {before.green_percent:.0f} % of traffic "
            f"(weights {before.to_dict()}); the drill runs before any traffic moves (to start over on "
            "purpose, trigger with allow_rerun_reason)"
        )
    if before.green != 0:
        what = f"re-run on purpose: green {before.green_percent:.0f} % -> 0 %"
        started = time.perf_counter()
        after = router.set_green_percent(0)
        rollback_seconds = time.perf_counter() - started
    else:
        what = f"{drill_percent} % -> 0 % green"
        try:
            router.set_green_percent(drill_percent)
        finally:
            started = time.perf_counter()
            after = router.set_green_percent(0)
            rollback_seconds = time.perf_counter() - started
    if after.green != 0:
        raise AirflowFailException(f"Rollback drill failed: weights {after.to_dict()} read back, green not at 0 %")
    if rollback_seconds > TRAFFIC_ROLLBACK_BUDGET_SECONDS:
        raise AirflowFailException(
            f"Rollback drill too slow ({what}): {rollback_seconds:.1f} s > {TRAFFIC_ROLLBACK_BUDGET_SECONDS:.0f} s budget"
        )
    reason = f"Rollback drill ({what}) in {rollback_seconds * 1000:.1f} ms, weights {after.to_dict()} verified by read-back"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "rollback_seconds": rollback_seconds,
            "green_percent_before": before.green_percent}
