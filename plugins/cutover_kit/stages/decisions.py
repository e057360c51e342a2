"""Branch and verdict tasks: they read what the gates and the rollback recorded and delegate the
decision to the pure functions in :mod:`cutover_kit.outcome`."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cutover_kit.outcome import choose_after_gate, choose_after_validation, final_outcome
from cutover_kit.sensors.slo_gate import GATE_RESULT_KEY

log = logging.getLogger(__name__)


def decide_after_gate(gate_task_id: str, proceed_task_id: str, halt_task_id: str) -> str:
    from airflow.sdk import get_current_context

    gate_result = get_current_context()["ti"].xcom_pull(task_ids=gate_task_id, key=GATE_RESULT_KEY)
    chosen, line = choose_after_gate(gate_result, proceed_task_id, halt_task_id)
    log.info(line)
    return chosen


def decide_after_validation(
    validate_task_id: str, expand_task_id: str, proceed_task_ids: list[str], halt_task_id: str
) -> list[str] | str:
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    chosen, line = choose_after_validation(
        ti.xcom_pull(task_ids=validate_task_id),
        ti.xcom_pull(task_ids=validate_task_id, key="validation_failure"),
        ti.xcom_pull(task_ids=expand_task_id),
        proceed_task_ids,
        halt_task_id,
    )
    log.info(line)
    return chosen


def cutover_verdict(
    promote_task_id: str, halt_task_ids: list[str], verify_rollback_task_ids: list[str], integrity_task_id: str
) -> dict[str, Any]:
    """The run's last word: promoted, or fail the run with the reason (rolled back or broken)."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    failed = sorted(task for task, state in states.items() if state == "failed" and task != ti.task_id)
    halts = [halt for halt in (ti.xcom_pull(task_ids=task_id) for task_id in halt_task_ids) if halt]
    from cutover_kit.stages.emergency import latched_stop_or_none

    stop = latched_stop_or_none()
    outcome = final_outcome(
        ti.xcom_pull(task_ids=promote_task_id),
        halts[0] if halts else None,
        next((v for v in (ti.xcom_pull(task_ids=t) for t in verify_rollback_task_ids) if v), None),
        failed,
        integrity_failed=states.get(integrity_task_id) == "failed",
        emergency_stop=stop.describe() if stop is not None else None,
    )
    if not outcome.succeeded:
        raise AirflowFailException(f"Outcome {outcome.outcome}: {outcome.reason}")
    log.info("Outcome %s: %s", outcome.outcome, outcome.reason)
    return {"verdict": "PASS", "outcome": outcome.outcome, "reason": outcome.reason}
