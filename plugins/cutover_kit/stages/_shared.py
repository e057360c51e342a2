"""Airflow-side helpers that several stages' tasks use (not a stage: no task callable lives here).

They build the actions layer's clients from hooks (``cutover_kit.hooks.levers``) and translate its
plain exceptions into Airflow's: an emergency stop is final (AirflowFailException, no retry), an
unknown state or a flag store that did not answer may clear up (AirflowException, retried).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit import connections
from cutover_kit.actions import emergency as emergency_actions
from cutover_kit.actions.flags import apply_everywhere
from cutover_kit.control import CutoverStateError, EmergencyStop
from cutover_kit.flags.model import FlagState, FlagStoreError
from cutover_kit.hooks.levers import connected_levers, read_emergency_stop, router_for_plan
from cutover_kit.plan import CutoverPlan
from cutover_kit.runbooks import with_runbook

log = logging.getLogger(__name__)


def plan_of_run(plan_task_id: str) -> CutoverPlan:
    """The plan stage 1 validated, pulled by task id (an XComArg would add a dependency edge that
    bypasses the step chain)."""
    from airflow.sdk import get_current_context

    plan = get_current_context()["ti"].xcom_pull(task_ids=plan_task_id)
    if not plan:
        raise AirflowFailException(f"No plan from {plan_task_id}; stage 1 must validate it first")
    return CutoverPlan.from_dict(plan)


def router_of_run(plan_task_id: str) -> Any:
    """The router the run's plan chose (HAProxyHook or GatewayAPIHook), logged once per task so
    the task log says which world its weights come from."""
    router = router_for_plan(plan_of_run(plan_task_id))
    log.info("Router: %s", router.describe())
    return router


def ensure_not_stopped(action: str) -> None:
    """Refuse `action` while an emergency stop is latched (final), or while the state is unreadable (retried)."""
    try:
        emergency_actions.ensure_not_stopped(action, read_emergency_stop)
    except emergency_actions.StopStateUnknown as error:
        raise AirflowException(str(error)) from error
    except emergency_actions.EmergencyStopLatched as error:
        raise AirflowFailException(str(error)) from error


def latched_stop_or_none() -> EmergencyStop | None:
    return emergency_actions.latched_stop_or_none(read_emergency_stop)


def record_step_progress(step_label: str) -> None:
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.cutover_state import CutoverStateHook

    try:
        context = get_current_context()
        CutoverStateHook().record_progress(context["run_id"], step_label, dag_id=context["ti"].dag_id)
    except CutoverStateError as error:  # progress is informational; the stop check is what guards
        log.warning("Could not record progress at %s: %s", step_label, error)


def record_outcome(outcome: str, reason: str) -> bool:
    """Record what this run ended with (absolute SET: the newest run wins), for the next cutover's
    stage 1. Best effort: the router's weights are stage 1's other, independent witness, so a
    Redis failure is logged and never turns a verified promotion or rollback into a failure."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.cutover_state import CutoverStateHook
    from cutover_kit.previous_cutover import RecordedOutcome

    context = get_current_context()
    ti = context["ti"]
    try:
        CutoverStateHook().record_outcome(RecordedOutcome(outcome, context["run_id"], ti.dag_id, time.time(), reason))
    except CutoverStateError as error:
        log.error("Outcome %s NOT recorded (the next cutover's stage 1 still reads the router): %s", outcome, error)
        return False
    log.info("Outcome %s recorded for the next cutover's stage 1", outcome)
    return True


def applied_flags(desired: FlagState, backend: str, what: str, runbook: str | None = None) -> dict[str, Any]:
    """Write `desired` in `backend`, verified in the store and in every app; a task's result.
    `runbook`: the section (cutover_kit.runbooks) the logged line names at its end."""
    levers = connected_levers()
    try:
        facts = apply_everywhere(desired, backend, levers.open_flag_store, levers.read_app_reports)
    except FlagStoreError as error:  # unreachable store, a flag that did not stick, an app that lags
        message = f"{what} not applied ({backend} backend): {error}"
        raise AirflowException(with_runbook(message, runbook) if runbook else message) from error
    reason = (f"{what}: {desired.describe()}; read back from {facts['store']} and evaluated by every app "
              f"({facts['apps']}) in {facts['seconds']:.3f} s")
    log.info(with_runbook(reason, runbook) if runbook else reason)
    return {"verdict": "PASS", "reason": reason, **facts}


def connection_url(conn_id: str, database: str | None = None) -> str:
    """SQLAlchemy URL of an Airflow Connection (``database`` overrides its schema field)."""
    from airflow.sdk import BaseHook

    from cutover_kit.validation import postgres_url

    conn = BaseHook.get_connection(conn_id)
    name = database or conn.schema
    if not name:
        raise AirflowFailException(f"Connection {conn_id} names no database: set its schema field")
    return postgres_url(host=conn.host, port=conn.port, login=conn.login, password=conn.password, database=name)


def connection_dsn(conn_id: str = connections.POSTGRES, database: str | None = None) -> str:
    """libpq DSN of an Airflow Connection (for psycopg2 and the backup helpers)."""
    from cutover_kit.hooks.postgres import connection_dsn as dsn_of

    return dsn_of(conn_id, database)