"""The `gate_watchdog` DAG's task: the dead-man's switch over the SLO gates (cutover_kit.dead_man).

Every minute it reads three witnesses, decides with :func:`~cutover_kit.dead_man.judge_gate_silence`
and, when traffic is on green and the running cutover's gate is silent (triggerer down, trigger
lost), runs the same reflex rollback as a halted gate (flags -> Rails, then traffic -> blue, each
within its own deadline: cutover_kit.actions.rollback) with its own reason in one log line, and
records the outcome "rolled_back" for the next cutover's stage 1, like the rollback group does.

It acts on what it can read and never guesses: an unreadable shared state or router fails the task
(retried, then the next minute's run) without touching anything. A rollback that does not verify
fails the task with the reason.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowException

from cutover_kit.actions.rollback import log_reflex, restore_blue_now, rollback_failure
from cutover_kit.control import CutoverStateError
from cutover_kit.dead_man import GateHeartbeat, judge_gate_silence, progress_record
from cutover_kit.flags.propagation import choose_flag_backend
from cutover_kit.hooks.levers import app_reports, connected_levers
from cutover_kit.previous_cutover import ROLLED_BACK
from cutover_kit.stages._shared import record_outcome

log = logging.getLogger(__name__)

CUTOVER_DAG_ID = "cutover"  # whose runs record progress without naming their DAG (records written before it did)


def _run_state(ti: Any, progress: dict[str, Any] | None, heartbeat: GateHeartbeat | None) -> str | None:
    """State of the DAG run the progress (else the heartbeat) names; None when it cannot be read."""
    if progress is not None:
        dag_id, run_id = progress.get("dag_id") or CUTOVER_DAG_ID, progress["run_id"]
    elif heartbeat is not None:
        dag_id, run_id = heartbeat.dag_id, heartbeat.run_id
    else:
        return None
    try:
        return str(ti.get_dagrun_state(dag_id=dag_id, run_id=run_id))
    except Exception as error:  # noqa: BLE001 - unknown is treated as running (the safe side), and said so
        log.warning("Could not read the state of %s/%s (treated as running): %s: %s", dag_id, run_id,
                    type(error).__name__, error)
        return None


def watch_gates() -> dict[str, Any]:
    """Decide from the heartbeat, the progress, the last outcome and the router; roll back if the gate is dead."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.cutover_state import CutoverStateHook
    from cutover_kit.hooks.haproxy import HAProxyHook

    ti = get_current_context()["ti"]
    state = CutoverStateHook()
    try:
        heartbeat = state.gate_heartbeat()
        progress = progress_record(state.progress())
        last = state.last_outcome()
    except CutoverStateError as error:
        raise AirflowException(f"Gate watchdog cannot tell whether a gate is silent, nothing done: {error}") from error
    try:
        weights = HAProxyHook().read_weights()
    except Exception as error:  # noqa: BLE001 - RouterError, a missing Connection: one clear line, then retried
        raise AirflowException(f"Gate watchdog cannot read the router's weights, nothing done: "
                               f"{type(error).__name__}: {error}") from error
    decision = judge_gate_silence(now=time.time(), green_percent=weights.green_percent, progress=progress,
                                  heartbeat=heartbeat, last_outcome=last, run_state=_run_state(ti, progress, heartbeat))
    if not decision.roll_back:
        log.info(decision.line)
        return {"rolled_back": False, "line": decision.line, "weights": weights.to_dict()}

    decided_at = time.time()
    log.error(decision.line)
    # The gate's heartbeat names the plan's flag store; without one, the store the apps report they evaluate.
    backend, why = choose_flag_backend(None, decision.flag_backend, app_reports)
    facts: dict[str, Any] = {"decided_at": decided_at, **restore_blue_now(connected_levers(), backend)}
    if not backend:
        facts["flags_restore_error"] = f"flags left as they are: {why}"
    log_reflex(facts)
    # Traffic verified on blue is what the next cutover's stage 1 must know, even if the flag level
    # failed (as the emergency rollback records it); best effort, like the rollback group.
    recorded = "traffic_restored_at" in facts and record_outcome(ROLLED_BACK, decision.line)
    failure = rollback_failure(facts)
    if failure:
        raise AirflowException(f"{decision.line}; rollback NOT verified: {failure}")
    return {"rolled_back": True, "line": decision.line, "outcome_recorded": recorded,
            **{key: value for key, value in facts.items() if key != "flags_apps"}}
