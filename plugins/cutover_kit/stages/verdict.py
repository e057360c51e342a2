"""The tasks outside any task group of `cutover`: the branches after stage 2's validation
(``decide_after_validation``), after stage 6's load test (``decide_after_load_test``) and after
stage 7's security audit (``decide_after_security_audit``), the zero-data-loss check at the end of every path
(``verify_data_integrity``) and the run's last word (``cutover_verdict``). The decisions are the
pure functions of :mod:`cutover_kit.outcome`; these tasks read what the run recorded."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cutover_kit import connections
from cutover_kit.db.schema_versions import EXPAND_VERSION
from cutover_kit.notify import FAILURE_XCOM_KEY
from cutover_kit.outcome import choose_after_load_test, choose_after_security_audit, choose_after_validation, final_outcome
from cutover_kit.stages._shared import connection_dsn, latched_stop_or_none

log = logging.getLogger(__name__)


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


def decide_after_load_test(load_task_id: str, stage_task_ids: list[str], proceed_task_id: str, halt_task_id: str) -> list[str] | str:
    """After stage 6: on to the drill (the first traffic on green), or halt before any moves."""
    from airflow.sdk import get_current_context

    from cutover_kit.stages.load_testing import FAILURE_KEY, SUMMARY_KEY

    ti = get_current_context()["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    chosen, line = choose_after_load_test(
        ti.xcom_pull(task_ids=load_task_id, key=SUMMARY_KEY), ti.xcom_pull(task_ids=load_task_id, key=FAILURE_KEY),
        {task: states.get(task) for task in stage_task_ids}, proceed_task_id, halt_task_id)
    log.info(line)
    return chosen


def decide_after_security_audit(judge_task_id: str, proceed_task_id: str, halt_task_id: str) -> list[str] | str:
    """After stage 7: on to the drill (the first traffic on green), or halt before any moves."""
    from airflow.sdk import get_current_context

    from cutover_kit.stages.security_audit import FAILURE_KEY, SUMMARY_KEY

    ti = get_current_context()["ti"]
    state = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {}).get(judge_task_id)
    chosen, line = choose_after_security_audit(
        ti.xcom_pull(task_ids=judge_task_id, key=SUMMARY_KEY), ti.xcom_pull(task_ids=judge_task_id, key=FAILURE_KEY),
        state, proceed_task_id, halt_task_id)
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
        message = f"Outcome {outcome.outcome}: {outcome.reason}"
        # Recorded for the verdict's notifier: under dag.test() a failure callback gets no exception.
        ti.xcom_push(key=FAILURE_XCOM_KEY, value=message)
        raise AirflowFailException(message)
    log.info("Outcome %s: %s", outcome.outcome, outcome.reason)
    return {"verdict": "PASS", "outcome": outcome.outcome, "reason": outcome.reason}


# Old and new columns must agree on every row, whichever app wrote it (the sync triggers' promise).
COLUMN_AGREEMENT_SQL = {
    "orders": "SELECT count(*) FROM orders WHERE amount IS DISTINCT FROM amount_cents / 100.0 "
              "OR status_v2::text IS DISTINCT FROM status",
    "line_items": "SELECT count(*) FROM line_items WHERE unit_price IS DISTINCT FROM unit_price_cents / 100.0",
    "users": "SELECT count(*) FROM users WHERE email_normalized IS DISTINCT FROM lower(btrim(email))",
}


def read_acknowledged_writes(path: str | None) -> list[int] | None:
    """Order ids the clients were told were written (one per line), or None when no ledger is kept."""
    from cutover_kit.acknowledged_writes import AcknowledgedWritesError, load_acknowledged_writes

    if not path:
        return None
    try:  # the same parser stage 1 checked the file with; read again, as it grew during the run
        return load_acknowledged_writes(path)
    except AcknowledgedWritesError as error:
        raise AirflowFailException(f"Writes ledger unusable: {error}") from error


def verify_data_integrity(acknowledged_writes_file: str | None = None, conn_id: str = connections.POSTGRES) -> dict[str, Any]:
    """Zero data loss, checked at the end whatever happened: every acknowledged write exists, and
    (while the expanded shape is in place) old and new columns agree for rows written by either app."""
    import psycopg2

    from cutover_kit.db.migrations import current_version

    acknowledged = read_acknowledged_writes(acknowledged_writes_file)
    problems, facts = [], []
    with psycopg2.connect(connection_dsn(conn_id)) as conn, conn.cursor() as cur:
        if acknowledged is not None:
            cur.execute("SELECT array_agg(id) FROM orders WHERE id = ANY(%s)", (acknowledged,))
            present = set(cur.fetchone()[0] or [])
            lost = [order_id for order_id in acknowledged if order_id not in present]
            facts.append(f"{len(acknowledged)} acknowledged writes, {len(lost)} missing")
            if lost:
                problems.append(f"{len(lost)} acknowledged orders missing (ids {lost[:10]})")
        else:
            facts.append("no writes ledger configured")
        if current_version(conn) == EXPAND_VERSION:
            for table, sql in COLUMN_AGREEMENT_SQL.items():
                cur.execute(sql)
                disagreeing = cur.fetchone()[0]
                if disagreeing:
                    problems.append(f"{table}: {disagreeing} rows where old and new columns disagree")
            facts.append("old and new columns compared on every row")
        else:
            facts.append("legacy shape only (expand not applied or rolled back)")
    conn.close()
    if problems:
        raise AirflowFailException("Data integrity check failed: " + "; ".join(problems))
    reason = "Data intact: " + "; ".join(facts)
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "acknowledged": len(acknowledged or []), "lost": 0}
