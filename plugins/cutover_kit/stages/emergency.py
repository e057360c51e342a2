"""The emergency stop: the `emergency_rollback` DAG's tasks, and the checks `cutover` makes.

Order in an emergency run: latch the stop first (so the cutover stops advancing within one gate
poll), then flags -> Rails, then traffic -> 100 % blue, then smoke checks on blue, then one line
with the timings. Each task sets absolute state, so a retry or a second emergency run is harmless.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.control import (
    CutoverStateError, EmergencyStop, emergency_halt_line, refusal_line, validate_reason,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- checks used by `cutover`

def ensure_not_stopped(action: str) -> None:
    """Refuse `action` while an emergency stop is latched; an unreadable state also refuses
    (retryable): the cutover never advances on an unknown."""
    from cutover_kit.hooks.cutover_state import CutoverStateHook

    try:
        stop = CutoverStateHook().emergency_stop()
    except CutoverStateError as error:
        raise AirflowException(f"Refusing to {action}: {error}") from error
    if stop is not None:
        line = refusal_line(action, stop)
        log.error(line)
        raise AirflowFailException(line)


def latched_stop_or_none() -> EmergencyStop | None:
    """Best effort, for the rollback record and the verdict: they must run even if Redis is down."""
    from cutover_kit.hooks.cutover_state import CutoverStateHook

    try:
        return CutoverStateHook().emergency_stop()
    except CutoverStateError as error:
        log.warning("Could not read the emergency stop (continuing without it): %s", error)
        return None


def record_step_progress(step_label: str) -> None:
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.cutover_state import CutoverStateHook

    try:
        CutoverStateHook().record_progress(get_current_context()["run_id"], step_label)
    except CutoverStateError as error:  # progress is informational; the stop check is what guards
        log.warning("Could not record progress at %s: %s", step_label, error)


def check_emergency_stop() -> dict[str, Any]:
    """Stage 1: a latched stop blocks a new cutover until an operator acknowledges it (param
    ``acknowledge_emergency_stop``), so a cutover never resumes by itself after an emergency."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.cutover_state import CutoverStateHook

    acknowledge = bool(get_current_context()["params"].get("acknowledge_emergency_stop"))
    hook = CutoverStateHook()
    try:
        stop = hook.emergency_stop()
        if stop is None:
            log.info("No emergency stop latched: the cutover may start")
            return {"verdict": "PASS", "reason": "no emergency stop latched"}
        if not acknowledge:
            raise AirflowFailException(
                f"Cutover refused: {stop.describe()}. It stays latched until a run is triggered with "
                "acknowledge_emergency_stop=true"
            )
        hook.clear_emergency_stop()
    except CutoverStateError as error:
        raise AirflowException(f"Cutover refused for now: {error}") from error
    reason = f"Emergency stop acknowledged and cleared by this run: {stop.describe()}"
    log.warning(reason)
    return {"verdict": "PASS", "reason": reason, "cleared": stop.to_json()}


# --------------------------------------------------------------------------- emergency_rollback tasks

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
    from cutover_kit.flags.model import FlagState
    from cutover_kit.flags.propagation import choose_flag_backend
    from cutover_kit.stages.flags import _applied, app_reports

    backend, why = choose_flag_backend(None, flag_backend, app_reports)  # the same rule as a smoke rollback
    if backend is None:
        raise AirflowException(f"Cannot tell which flag store the apps use: {why}; trigger with flag_backend set")
    return _applied(FlagState.rails(), backend, "Emergency level 1, flags -> Rails")


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
    if not latch.get("latched"):
        problems.insert(0, "stop not latched")
    line = (f"Emergency rollback {'INCOMPLETE' if problems else 'complete'} ({', '.join(parts)} after the trigger; "
            f"reason: {latch.get('reason', '?')})")
    if problems:
        raise AirflowFailException(f"{line}; not done: {', '.join(problems)}")
    log.info(line)
    traffic = results.get("traffic") or {}
    return {"verdict": "PASS", "line": line, "triggered_at": triggered_at,
            "traffic_verified_seconds": round(traffic["verified_at"] - triggered_at, 3)}


__all__ = [
    "check_emergency_stop", "emergency_halt_line", "ensure_not_stopped", "latch_emergency_stop",
    "latched_stop_or_none", "record_step_progress", "report_emergency_rollback",
]
