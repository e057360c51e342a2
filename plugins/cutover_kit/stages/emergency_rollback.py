"""The `emergency_rollback` DAG's tasks. The stop they latch is obeyed by `cutover`: every step
refuses to advance (cutover_kit.actions.emergency), every gate poll reads it (the SLO trigger),
and stage 1 refuses to start while it is latched
(:func:`cutover_kit.stages.deployment_readiness.check_emergency_stop`).

Order in an emergency run: latch the stop first (so the cutover stops advancing within one gate
poll), then flags -> Rails, then traffic -> 100 % blue, then smoke checks on blue, then one line
with the timings (and, once traffic is verified on blue, the outcome "rolled_back" recorded for the
next cutover's stage 1). Each task sets absolute state, so a retry or a second emergency run is harmless.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit import connections
from cutover_kit.control import CutoverStateError, EmergencyStop, validate_reason
from cutover_kit.flags.model import FlagState
from cutover_kit.flags.propagation import choose_flag_backend
from cutover_kit.hooks.levers import app_reports
from cutover_kit.stages import rollback, traffic_migration
from cutover_kit.previous_cutover import ROLLED_BACK
from cutover_kit.stages._shared import applied_flags, record_outcome

log = logging.getLogger(__name__)


def _trigger_time(dag_run: Any) -> float:
    for field in ("queued_at", "start_date", "run_after"):
        value = getattr(dag_run, field, None)
        if value is not None:
            return value.timestamp()
    return time.time()


def latch_emergency_stop(reason: Any) -> dict[str, Any]:
    """Latch the stop the cutover obeys. The first latch's reason stands if one already exists."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.cutover_state import CutoverStateHook

    try:
        text = validate_reason(reason)
    except ValueError as error:
        raise AirflowFailException(f"Emergency rollback refused: {error}") from error
    context = get_current_context()
    dag_run = context["dag_run"]
    triggered_at = _trigger_time(dag_run)
    wanted = EmergencyStop(text, getattr(dag_run, "triggering_user_name", None) or "unknown", time.time(),
                           context["run_id"])
    hook = CutoverStateHook()
    try:
        in_force = hook.latch_emergency_stop(wanted)
        progress = hook.progress()
    except CutoverStateError as error:
        # Keep going: flags and traffic can still be put back; the run fails at the report.
        log.error("Emergency stop NOT latched (rolling back anyway): %s", error)
        return {"latched": False, "error": str(error), "triggered_at": triggered_at, "reason": text}
    where = f"cutover run {progress['run_id']} last at {progress['step']}" if progress else "no cutover progress recorded"
    log.info("Emergency stop latched %.2f s after the trigger (%s): %s", time.time() - triggered_at, where,
             in_force.describe())
    return {"latched": True, "stop": in_force.to_json(), "triggered_at": triggered_at, "reason": in_force.reason,
            "interrupted": progress}


def flags_to_rails(flag_backend: str | None = None) -> dict[str, Any]:
    """Level 1: flags -> Rails in the store the apps actually evaluate, verified in every app.

    The backend comes from the param when given, else from the apps' own /__flags reports (an
    emergency run has no plan), so the button works whichever store the running cutover uses.
    """
    backend, why = choose_flag_backend(None, flag_backend, app_reports)  # the same rule as a smoke rollback
    if backend is None:
        raise AirflowException(f"Cannot tell which flag store the apps use: {why}; trigger with flag_backend set")
    return applied_flags(FlagState.rails(), backend, "Emergency level 1, flags -> Rails")


def route_all_to_blue(router_plan: str = "default") -> dict[str, Any]:
    """Level 2: 100 % of traffic on blue, read back (the cutover's rollback level 2), on the router
    of plan file `router_plan` (param; the emergency run has no plan of its own)."""
    return rollback.route_all_to_blue(plan_name=router_plan or "default")


def verify_blue_serving() -> dict[str, Any]:
    """Through the router, every answer comes from blue and succeeds (recorded by the report)."""
    return rollback.check_blue_serving_alone()


def smoke_checks_on_blue(flag_backend: str | None = None) -> dict[str, Any]:
    """The stage-11 smoke checks on blue directly and through the router. No plan here: a failed
    check flips flags in `flag_backend` (the param), else in the store the apps report."""
    return traffic_migration.smoke_checks("emergency rollback", targets=(connections.APP_BLUE, connections.APP_ROUTER),
                                          flag_backend=flag_backend)


def report_emergency_rollback(latch_task_id: str, step_task_ids: dict[str, str]) -> dict[str, Any]:
    """One line with every timing; fails the run if any part of the rollback did not complete."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    latch = ti.xcom_pull(task_ids=latch_task_id) or {}
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    results = {name: ti.xcom_pull(task_ids=task_id) for name, task_id in step_task_ids.items()}
    triggered_at = latch.get("triggered_at") or time.time()
    parts = []
    for name, task_id in step_task_ids.items():
        result = results[name] or {}
        done_at = result.get("verified_at")
        status = states.get(task_id, "unknown")
        parts.append(f"{name} {done_at - triggered_at:.2f} s" if done_at and status == "success" else f"{name} {status}")
    problems = [name for name, task_id in step_task_ids.items() if states.get(task_id) != "success"]
    # Traffic verified on blue is what the next cutover's stage 1 must know, even if another part
    # failed; best effort (record_outcome logs a Redis failure, never raises).
    traffic_task = step_task_ids.get("traffic")
    recorded = traffic_task is not None and states.get(traffic_task) == "success" and record_outcome(
        ROLLED_BACK, f"emergency rollback: {latch.get('reason', '?')}")
    if not latch.get("latched"):
        problems.insert(0, "stop not latched")
    line = (f"Emergency rollback {'INCOMPLETE' if problems else 'complete'} ({', '.join(parts)} after the trigger; "
            f"reason: {latch.get('reason', '?')})")
    if problems:
        raise AirflowFailException(f"{line}; not done: {', '.join(problems)}")
    log.info(line)
    traffic = results.get("traffic") or {}
    return {"verdict": "PASS", "line": line, "triggered_at": triggered_at, "outcome_recorded": recorded,
            "traffic_verified_seconds": round(traffic["verified_at"] - triggered_at, 3)}
