"""The `gate_watchdog` DAG's task: the dead-man's switch over the SLO gates (cutover_kit.dead_man).

Every minute it reads its witnesses (the gate heartbeat, the cutover's progress, the last outcome,
the router's weights, the run's state), decides with :func:`~cutover_kit.dead_man.judge_gate_silence`
and, when traffic is on green and the running cutover's gate is silent (triggerer down, trigger
lost), it:

1. latches the emergency stop with its own reason (cutover_kit.control), as the red button does:
   the cutover must not climb again by itself. Without it, a gate whose triggerer comes back would
   resume its bake, could pass on the window that still holds green's traffic from before the
   rollback, and the next step would move green from 0 % straight to its next share. With it, the
   gate halts at its next poll with the dead-man's reason, the run ends rolled back, and the next
   cutover starts only with ``acknowledge_emergency_stop``;
2. runs the same reflex rollback as a halted gate (flags -> Rails, then traffic -> blue, each within
   its own deadline: cutover_kit.actions.rollback), with one log line per level;
3. records the outcome "rolled_back" for the next cutover's stage 1, like the rollback group does.

It acts on what it can read and never guesses: an unreadable shared state or router fails the task
(retried, then the next minute's run) without touching anything. A rollback that does not verify
fails the task with the reason.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.actions.rollback import log_reflex, restore_blue_now, rollback_failure
from cutover_kit.control import CutoverStateError, EmergencyStop
from cutover_kit.dead_man import GateHeartbeat, judge_gate_silence, progress_record
from cutover_kit.flags.propagation import choose_flag_backend
from cutover_kit.hooks.levers import app_reports, connected_levers
from cutover_kit.previous_cutover import ROLLED_BACK
from cutover_kit.stages._shared import record_outcome

log = logging.getLogger(__name__)

NOT_FOUND = "not found"
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
        if getattr(getattr(error, "response", None), "status_code", None) == 404:
            # This Airflow has no such run (deleted, or state left by another Airflow): nothing runs it.
            log.info("No DAG run %s/%s in this Airflow (404)", dag_id, run_id)
            return NOT_FOUND
        log.warning("Could not read the state of %s/%s (treated as running): %s: %s", dag_id, run_id,
                    type(error).__name__, error)
        return None


def _latch_stop(state: Any, line: str, decided_at: float) -> bool:
    """Latch the emergency stop with the dead-man's reason (an earlier latch's reason stands).
    Best effort here: the rollback runs either way, and the task fails afterwards if this did not hold."""
    from airflow.sdk import get_current_context

    try:
        in_force = state.latch_emergency_stop(EmergencyStop(line, "gate_watchdog", decided_at,
                                                            get_current_context()["run_id"]))
    except CutoverStateError as error:
        log.error("Emergency stop NOT latched (rolling back anyway): %s", error)
        return False
    log.info("Emergency stop latched: the cutover stops advancing; %s", in_force.describe())
    return True


def watch_gates(router_plan: str = "default") -> dict[str, Any]:
    """Decide from the heartbeat, the progress, the last outcome and the router; roll back if the gate
    is dead. The router is the one plan file `router_plan` chose (haproxy or gateway_api)."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.cutover_state import CutoverStateHook
    from cutover_kit.hooks.levers import router_for_plan
    from cutover_kit.plan import PlanError, load_plan

    ti = get_current_context()["ti"]
    state = CutoverStateHook()
    try:
        heartbeat = state.gate_heartbeat()
        progress = progress_record(state.progress())
        last = state.last_outcome()
    except CutoverStateError as error:
        raise AirflowException(f"Gate watchdog cannot tell whether a gate is silent, nothing done: {error}") from error
    try:
        plan = load_plan(router_plan or "default")
    except PlanError as error:
        raise AirflowFailException(f"Gate watchdog cannot tell which router to read, nothing done: {error}") from error
    router = router_for_plan(plan)
    try:
        weights = router.read_weights()
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
    latched = _latch_stop(state, decision.line, decided_at)
    # The gate's heartbeat names the plan's flag store; without one, the store the apps report they evaluate.
    backend, why = choose_flag_backend(None, decision.flag_backend, app_reports)
    facts: dict[str, Any] = {"decided_at": decided_at, **restore_blue_now(connected_levers(plan=plan), backend)}
    if not backend:
        facts["flags_restore_error"] = f"flags left as they are: {why}"
    log_reflex(facts)
    # Traffic verified on blue is what the next cutover's stage 1 must know, even if the flag level
    # failed (as the emergency rollback records it); best effort, like the rollback group.
    recorded = "traffic_restored_at" in facts and record_outcome(ROLLED_BACK, decision.line)
    failure = rollback_failure(facts)
    if failure:
        raise AirflowException(f"{decision.line}; rollback NOT verified: {failure}")
    if not latched:
        raise AirflowException(f"{decision.line}; rolled back and verified, but the emergency stop was NOT latched, "
                               "so the cutover may climb again: trigger emergency_rollback")
    return {"rolled_back": True, "line": decision.line, "outcome_recorded": recorded, "stop_latched": latched,
            **{key: value for key, value in facts.items() if key != "flags_apps"}}
