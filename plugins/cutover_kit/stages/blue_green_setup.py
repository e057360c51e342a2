"""Stage 9, blue-green setup (task group ``stage_09_blue_green_setup``): both servers present and
passing health checks in the router, green at 0 %, read back."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowException

from cutover_kit.stages._shared import router_of_run

log = logging.getLogger(__name__)


def blue_green_setup(plan_task_id: str) -> dict[str, Any]:
    """Both servers present and passing health checks in the plan's router, green at 0 %."""
    router = router_of_run(plan_task_id)
    states = router.server_states()
    not_up = {color: state for color, state in states.items() if not state.startswith("UP")}
    if not_up:
        raise AirflowException(f"Blue-green setup: router health checks not UP: {not_up}")
    weights = router.set_green_percent(0)
    reason = f"Blue-green ready: blue {states['blue']}, green {states['green']}, weights {weights.to_dict()}"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "weights": weights.to_dict()}
