"""Stage 2, database preparation: version check, verified backup, expand migration, batched
backfill, and the database rollback (down migration, verified). Great Expectations validation
lives in :mod:`cutover_kit.stages.database`.

Every task sets absolute state: the expand is a no-op when already applied, the backfill only
fills NULLs, the down migration is a no-op when already reverted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.stages.database import TABLES, connection_dsn

# Kept in step with cutover_kit.db.migrations (checked by a unit test); importing that module here
# would pull psycopg2 into DAG parsing.
BASE_VERSION = "20240101000000"
EXPAND_VERSION = "20261126000001"

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
BACKUP_DIR_ENV = "CUTOVER_BACKUP_DIR"


def check_schema_version(conn_id: str = "postgres_default") -> dict[str, Any]:
    import psycopg2

    from cutover_kit.db.migrations import current_version

    with psycopg2.connect(connection_dsn(conn_id)) as conn:
        version = current_version(conn)
    if version not in (BASE_VERSION, EXPAND_VERSION):
        raise AirflowFailException(
            f"Database is at version {version}, expected {BASE_VERSION} (legacy) or {EXPAND_VERSION} (already expanded)"
        )
    state = "legacy, expand pending" if version == BASE_VERSION else "already expanded (re-run)"
    reason = f"Database at version {version}: {state}"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "version": version}


def backup_before_migration(conn_id: str = "postgres_default") -> dict[str, Any]:
    """pg_dump -Fc of the live database, restored into a scratch database and compared with the
    dump-time fingerprints before the migration may proceed (``backup.verify_backup``: the whole
    archive listed, tables and rows restored). Returns the backup record."""
    from airflow.sdk import get_current_context

    from cutover_kit.db.backup import backup_database
    from cutover_kit.db.errors import BackupError
    from cutover_kit.db.verify import verify_backup

    run_id = get_current_context()["run_id"]
    backup_dir = Path(os.environ.get(BACKUP_DIR_ENV) or REPO_ROOT / ".artifacts" / "backups") / run_id.replace(":", "_").replace("+", "_")
    dsn = connection_dsn(conn_id)
    try:
        record = backup_database(dsn, backup_dir)
        # The apps keep writing: the live database cannot equal the dump, so only "the file restores
        # exactly what was dumped" decides, and a second full pass over the live tables is skipped.
        verification = verify_backup(dsn, record, compare_live=False)
    except BackupError as error:
        raise AirflowException(f"Backup failed: {error}") from error
    if not verification.restored_matches_dump:
        raise AirflowFailException(f"Backup {record.path} does not restore to what was dumped: {verification.mismatches}")
    reason = (
        f"Backup {record.path} ({record.bytes / 1e6:.1f} MB, sha256 {record.sha256[:12]}): "
        f"{verification.archive_entries} archive entries listed, tables and rows restored into a scratch "
        f"database and matched the dump's per-table counts and checksums in {verification.seconds:.1f} s"
    )
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "verified": True, **record.as_dict()}


def expand_schema(conn_id: str = "postgres_default") -> dict[str, Any]:
    from cutover_kit.db.migrations import MigrationError, migrate_up

    try:
        report = migrate_up(connection_dsn(conn_id), EXPAND_VERSION, expected_current=BASE_VERSION)
    except MigrationError as error:
        raise AirflowFailException(f"Expand refused: {error}") from error
    reason = (
        f"Expand {EXPAND_VERSION} already applied (no-op)" if report.noop
        else f"Expand {report.from_version} -> {report.to_version} applied in {report.seconds:.2f} s"
    )
    log.info(reason)
    # `applied`: this run changed the schema, so a failed stage 2 has something of its own to undo.
    return {"verdict": "PASS", "reason": reason, "applied": not report.noop}


def backfill_new_columns(conn_id: str = "postgres_default") -> dict[str, Any]:
    """The batched backfill, then VACUUM (ANALYZE) of the rewritten tables, so that validation
    reads live rows with fresh statistics (``migrations.vacuum_analyze`` says why)."""
    from cutover_kit.db.migrations import backfill, vacuum_analyze

    dsn = connection_dsn(conn_id)
    report = backfill(dsn)
    if not report.complete:
        raise AirflowException(f"Backfill incomplete: {report.remaining} rows still NULL; retrying")
    vacuum_seconds = vacuum_analyze(dsn)
    reason = (
        f"Backfill: {report.rows} rows in {report.batches} batches, {report.seconds:.1f} s, "
        f"longest batch {report.max_batch_seconds * 1000:.0f} ms; VACUUM ANALYZE {vacuum_seconds:.1f} s"
    )
    log.info(reason)
    return {"verdict": "PASS", "reason": reason}


def rollback_database(conn_id: str = "postgres_default", router_conn_id: str = "haproxy_default") -> dict[str, Any]:
    """The down migration: back to the legacy shape, keeping every row either app wrote.

    Green reads and writes the expanded columns, so the down migration runs only while the router
    gives green no traffic (read back from HAProxy); unreadable weights refuse too."""
    import psycopg2

    from cutover_kit.db.migrations import MigrationError, current_version, migrate_down
    from cutover_kit.hooks.haproxy import HAProxyHook

    try:
        weights = HAProxyHook(router_conn_id).read_weights()
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


__all__ = ["TABLES"]


def validate_expanded_database(backup_record: dict[str, Any], scratch_db: str, conn_id: str = "postgres_default") -> dict[str, Any]:
    """Great Expectations on the expanded database, against the backup's dump-time snapshot and a
    scratch restore of the backup. On failure the summary is kept in XCom for the halt record."""
    from airflow.sdk import get_current_context

    from cutover_kit.stages import database

    snapshot = database.snapshot_from_backup(backup_record)
    try:
        summary = database.validate_migration(snapshot, conn_id=conn_id, backup_database=scratch_db,
                                              backup_max_ids=database.backup_max_ids_of(backup_record))
    except AirflowFailException as error:
        get_current_context()["ti"].xcom_push(key="validation_failure", value={"reason": str(error)})
        raise
    return {"verdict": "PASS", "reason": f"GX: {summary['expectations']} expectations passed in {summary['seconds']:.1f} s", **summary}


def down_migration_refusal(green_percent: float) -> str | None:
    """Why the down migration must not run now, or None: green needs the columns it drops."""
    if green_percent > 0:
        return (f"Down migration refused: green still gets {green_percent:g} % of the traffic and needs the expanded "
                "columns; route all traffic to blue first (emergency_rollback); nothing was changed")
    return None


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


def verify_data_integrity(acknowledged_writes_file: str | None = None, conn_id: str = "postgres_default") -> dict[str, Any]:
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
