"""Stage 8, rollback procedures (task group ``stage_08_rollback_procedures``): a drill before any
traffic moves. A little traffic goes to green, is rolled back and verified by read-back, and the
rollback is timed against the budget a real one must meet."""

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


def rollback_drill(plan: dict[str, Any]) -> dict[str, Any]:
    """Put a little traffic on green, roll it back, verify by read-back, and time the rollback."""
    from cutover_kit.hooks.haproxy import HAProxyHook

    ensure_not_stopped("run the rollback drill")
    drill_percent = CutoverPlan.from_dict(plan).rollback_drill_percent
    router = HAProxyHook()
    before = router.read_weights()
    if before.green != 0:
        raise AirflowFailException(
            f"Rollback drill refused: green already has {before.green_percent:.0f} % of traffic "
            f"(weights {before.to_dict()}); the drill runs before any traffic moves"
        )
    try:
        router.set_green_percent(drill_percent)
    finally:
        started = time.perf_counter()
        after = router.set_green_percent(0)
        rollback_seconds = time.perf_counter() - started
    if rollback_seconds > TRAFFIC_ROLLBACK_BUDGET_SECONDS:
        raise AirflowFailException(
            f"Rollback drill too slow: {rollback_seconds:.1f} s > {TRAFFIC_ROLLBACK_BUDGET_SECONDS:.0f} s budget"
        )
    reason = (
        f"Rollback drill: {drill_percent} % -> 0 % green in {rollback_seconds * 1000:.1f} ms, "
        f"weights {after.to_dict()} verified by read-back"
    )
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "rollback_seconds": rollback_seconds}
