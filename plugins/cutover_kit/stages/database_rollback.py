"""The database rollback (task group ``database_rollback``): why stage 2 stopped the cutover,
then the down migration back to the legacy shape, verified. It runs only when stage 2 failed
after this run's expand, and only while green gets no traffic: green needs the columns it drops.
The down migration is a no-op when already reverted.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cutover_kit import connections
from cutover_kit.db.schema_versions import BASE_VERSION, EXPAND_VERSION
from cutover_kit.stages._shared import connection_dsn

log = logging.getLogger(__name__)


def record_database_halt(validate_task_id: str) -> dict[str, Any]:
    """Why stage 2 stopped the cutover: the failed expectations, or the failed task."""
    import time

    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    failure = ti.xcom_pull(task_ids=validate_task_id, key="validation_failure")
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    failed = sorted(task for task, state in states.items() if state == "failed")
    detail = failure["reason"] if failure else f"task(s) failed: {', '.join(failed) or 'none recorded'}"
    reason = f"Halt before any traffic moved: {detail}"
    log.info(reason)
    return {"verdict": "FAIL", "step": "database", "reason": reason, "decided_at": time.time(), "traffic_restored_at": None}


def rollback_database(conn_id: str = connections.POSTGRES, router_conn_id: str = connections.HAPROXY,
                      plan_task_id: str | None = None) -> dict[str, Any]:
    """The down migration: back to the legacy shape, keeping every row either app wrote.

    Green reads and writes the expanded columns, so the down migration runs only while the router
    (the plan's, when `plan_task_id` is given; else HAProxy behind `router_conn_id`) gives green no
    traffic, read back; unreadable weights refuse too."""
    import psycopg2

    from cutover_kit.db.migrations import MigrationError, current_version, migrate_down
    from cutover_kit.hooks.levers import router_for_plan
    from cutover_kit.stages._shared import plan_of_run

    try:
        plan = plan_of_run(plan_task_id) if plan_task_id else None
        weights = router_for_plan(plan, router_conn_id).read_weights()
    except Exception as error:  # noqa: BLE001 - any failure to read means green may still be serving
        raise AirflowFailException(f"Down migration refused: cannot read the router's weights to prove green is "
                                   f"drained ({type(error).__name__}: {error}); nothing was changed") from error
    refusal = down_migration_refusal(weights.green_percent)
    if refusal:
        raise AirflowFailException(refusal)
    dsn = connection_dsn(conn_id)
    try:
        report = migrate_down(dsn, EXPAND_VERSION, expected_current=EXPAND_VERSION)
    except MigrationError as error:
        raise AirflowFailException(f"Down migration refused: {error}") from error
    with psycopg2.connect(dsn) as conn:
        version = current_version(conn)
    if version != BASE_VERSION:
        raise AirflowFailException(f"Database rollback not verified: version {version}, expected {BASE_VERSION}")
    reason = (
        f"Database rolled back to {BASE_VERSION} ({'already there' if report.noop else f'in {report.seconds:.2f} s'}), "
        "legacy columns intact"
    )
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "verified": True}


def down_migration_refusal(green_percent: float) -> str | None:
    """Why the down migration must not run now, or None: green needs the columns it drops."""
    if green_percent > 0:
        return (f"Down migration refused: green still gets {green_percent:g} % of the traffic and needs the expanded "
                "columns; route all traffic to blue first (emergency_rollback); nothing was changed")
    return None
