"""Stage 12, blue monitoring (task group ``stage_12_blue_monitoring``): blue's baseline before
traffic moves (every gate also checks that blue does not regress against it), and blue verified
warm after the standby watch, so a rollback stays instant."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit import connections
from cutover_kit.plan import CutoverPlan

log = logging.getLogger(__name__)


def capture_blue_baseline(plan: dict[str, Any]) -> dict[str, Any]:
    """Stage 12: blue's own numbers before traffic moves, the yardstick for blue's regression and
    the stand-in for live blue once blue no longer gets traffic."""
    from cutover_kit.hooks.prometheus import PrometheusHook
    from cutover_kit.measure import measure_color
    from cutover_kit.slo import Verdict, summarize_baseline

    parsed = CutoverPlan.from_dict(plan)
    blue = measure_color(PrometheusHook(), "blue", parsed.baseline_seconds, tuple(parsed.slo.quantiles), parsed.metrics,
                         parsed.slo.confidence_z)
    judgement = summarize_baseline(blue, min_requests=parsed.min_requests, window_seconds=parsed.baseline_seconds)
    log.info("%s: %s", judgement.verdict.value, judgement.reason)
    if judgement.verdict is Verdict.FAIL:
        raise AirflowFailException(judgement.reason)
    if judgement.verdict is Verdict.INCONCLUSIVE:
        raise AirflowException(f"{judgement.reason}; retrying")  # more traffic may arrive
    return {"verdict": "PASS", "reason": judgement.reason, "window": blue.to_dict()}


def verify_blue_warm(plan_task_id: str) -> dict[str, Any]:
    """Stage 12 after cutover: blue is kept warm (healthy, ready) so a rollback stays instant."""
    from cutover_kit.hooks.service import ServiceHook
    from cutover_kit.stages._shared import router_of_run

    state = router_of_run(plan_task_id).server_states()["blue"]
    ready = ServiceHook(connections.APP_BLUE).probe("GET", "/readyz")
    if not state.startswith("UP") or ready.status != 200:
        raise AirflowFailException(f"Blue is not warm: router says {state}, /readyz {ready.status or ready.error}")
    reason = f"Blue kept warm: router {state}, /readyz HTTP 200 in {ready.elapsed_ms:.0f} ms"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason}
