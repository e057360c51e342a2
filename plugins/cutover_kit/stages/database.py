"""Stage 2, database preparation: Great Expectations validation of the expanded schema.

Task callables (the `cutover` DAG runs the validation through
:func:`cutover_kit.stages.migration.validate_expanded_database`, which calls :func:`validate_migration`
with :func:`snapshot_from_backup`; :func:`build_validation_task` wires the same callable into any DAG):

* :func:`snapshot_row_counts` -> ``{table: {"count": n, "max_id": m}}`` before the migration (one
  snapshot, counted in PostgreSQL): the table's rows then were exactly the n rows with id <= m.
  :func:`snapshot_from_backup` derives the same dict from a backup record's dump-time
  fingerprints, which were taken in the dump's own snapshot. Prefer it when a backup is compared
  too: the row counts and the checksums then bound the pre-existing rows at the same moment.
* :func:`restore_backup_for_validation` restores the verified backup into a scratch database that
  stays in place for the checksum comparison (``backup.restore_to_scratch``);
  :func:`drop_backup_scratch` removes it afterwards.

Both apps keep inserting during stage 2, so the checks compare the pre-existing rows only: rows
with id <= the snapshot's max_id must number exactly the snapshot's count (a lost or extra row
among them fails; rows above are new and allowed), and the legacy-column checksums cover rows with
id <= max_id on both sides (see ``include/gx/suites.py``). The old ``{table: count}`` snapshot shape
is still accepted: without a max_id the count covers the whole table.
* :func:`validate_migration` runs the suites of ``include/gx/suites.py`` (users, orders,
  line_items), logs one line per expectation, writes the results to the artifact directory and
  fails the task (AirflowFailException, no retry) naming every failed expectation.

Why one ``@task`` and not one ``GXValidateBatchOperator`` per table
-------------------------------------------------------------------
* The operator's ``configure_expectations(context)`` receives only the GX context. The row counts
  come from a task of the same run, so a per-table operator would need a subclass with an extra
  templated field to get them into its expectations.
* Three operators mean three task processes, each importing great_expectations (6-9 s, ~230 MB
  each, measured here). One task imports it once and validates all three tables in ~the time the
  SQL takes.
* The operator raises GXValidationFailed, an AirflowException, so Airflow would retry a data
  defect; here a defect is an AirflowFailException (no retry), a lost connection still retries.
* The operator logs nothing per expectation and lists only failed expectation *types*.

The task still runs the provider's code path: ``load_data_context`` and
``run_validation_definition`` from ``great_expectations_provider.common.gx_context_actions`` are
exactly what ``GXValidateBatchOperator.execute`` calls (see ``cutover_kit.validation``).

Connections: the live database is ``conn_id`` (default ``postgres_default``). The backup copy is
``backup_conn_id`` when given, else the live Connection with its database (schema) replaced by
``backup_database``. URLs are built with SQLAlchemy's escaping, not the provider's f-string (which
turns an empty password into the text "None").
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
ARTIFACT_ENV = "CUTOVER_GX_ARTIFACT_DIR"  # base directory; the run id is appended
DEFAULT_ARTIFACT_ROOT = REPO_ROOT / ".artifacts" / "gx"
DEFAULT_SCRATCH_DB = "cutover_gx_backup"
TABLES = ("users", "orders", "line_items")


# --------------------------------------------------------------------------------------------
# Connections


def connection_url(conn_id: str, database: str | None = None) -> str:
    """SQLAlchemy URL of an Airflow Connection (``database`` overrides its schema field)."""
    from airflow.sdk import BaseHook

    from cutover_kit.validation import postgres_url

    conn = BaseHook.get_connection(conn_id)
    name = database or conn.schema
    if not name:
        raise AirflowFailException(f"Connection {conn_id} names no database: set its schema field")
    return postgres_url(host=conn.host, port=conn.port, login=conn.login, password=conn.password, database=name)


def connection_dsn(conn_id: str, database: str | None = None) -> str:
    """libpq DSN of an Airflow Connection (for psycopg2 and the backup helpers)."""
    import psycopg2.extensions
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    params = {"host": conn.host, "port": conn.port, "user": conn.login, "password": conn.password,
              "dbname": database or conn.schema}
    return psycopg2.extensions.make_dsn(**{key: value for key, value in params.items() if value})


# --------------------------------------------------------------------------------------------
# Snapshot and backup copy


Snapshot = dict[str, dict[str, Any]]  # {table: {"count": n, "max_id": m or None}}


def snapshot_row_counts(conn_id: str = "postgres_default", tables: Sequence[str] = TABLES) -> Snapshot:
    """{table: {"count", "max_id"}} of the live database, all tables counted in one snapshot."""
    return row_counts(connection_dsn(conn_id), tables)


def row_counts(dsn: str, tables: Sequence[str] = TABLES) -> Snapshot:
    """{table: {"count": n, "max_id": m}}: the n rows with id <= m are the table's rows now (m is
    the settled bound of ``backup.row_snapshot``, normally max(id))."""
    from cutover_kit.db import fingerprints as backup

    snapshot = backup.row_snapshot(dsn, tables)
    log.info("Row counts before the migration: %s", _describe_snapshot(snapshot))
    return snapshot


def snapshot_from_backup(record: Mapping[str, Any], tables: Sequence[str] = TABLES) -> Snapshot:
    """{table: {"count", "max_id"}} from a BackupRecord (dict) taken before the migration: its
    fingerprints were computed in the dump's own snapshot, so they describe the rows of that moment.
    A record from before max_id was recorded gives max_id None (the count then covers the table)."""
    fingerprints = record.get("fingerprints") or {}
    missing = [table for table in tables if table not in fingerprints]
    if missing:
        raise AirflowFailException(f"the backup record has no fingerprint for {', '.join(missing)}")
    snapshot: Snapshot = {}
    for table in tables:
        entry = fingerprints[table]
        max_id = entry.get("max_id")
        count = entry.get("count_to_max_id", entry["count"]) if max_id is not None else entry["count"]
        snapshot[table] = {"count": int(count), "max_id": None if max_id is None else int(max_id)}
    log.info("Row counts at the backup: %s", _describe_snapshot(snapshot))
    return snapshot


def _describe_snapshot(snapshot: Mapping[str, Mapping[str, Any]]) -> str:
    return ", ".join(f"{table} {entry['count']}"
                     + ("" if entry.get("max_id") is None else f" (ids <= {entry['max_id']})")
                     for table, entry in snapshot.items())


def restore_backup_for_validation(record: Mapping[str, Any], conn_id: str = "postgres_default",
                                  scratch_db: str = DEFAULT_SCRATCH_DB) -> str:
    """Restore the backup file of `record` into `scratch_db` (re-created) on the live server and
    keep it for the checksum comparison. Returns the scratch database's name."""
    from cutover_kit.db import restore as backup

    try:
        backup.restore_to_scratch(connection_dsn(conn_id), record, scratch_db)
    except backup.BackupUnusable as error:  # a bad file stays bad: no retry
        raise AirflowFailException(f"backup not usable for validation: {error}") from error
    log.info("Backup %s restored into %s for the checksum comparison", record.get("path"), scratch_db)
    return scratch_db


def drop_backup_scratch(conn_id: str = "postgres_default", scratch_db: str = DEFAULT_SCRATCH_DB) -> None:
    from cutover_kit.db import restore as backup

    backup.drop_scratch(connection_dsn(conn_id), scratch_db)


# --------------------------------------------------------------------------------------------
# Validation


def artifact_dir_for(run_id: str | None, base: str | Path | None = None) -> Path:
    """<base>/<run id>; base = argument, else $CUTOVER_GX_ARTIFACT_DIR, else <repo>/.artifacts/gx."""
    root = Path(base or os.environ.get(ARTIFACT_ENV) or DEFAULT_ARTIFACT_ROOT)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id or "manual").strip("._") or "manual"
    return root / safe


def validate_migration(snapshot: Mapping[str, Any] | None = None, *, conn_id: str = "postgres_default",
                       backup_conn_id: str | None = None, backup_database: str | None = None,
                       tables: Sequence[str] | None = None, artifact_dir: str | None = None,
                       run_id: str | None = None,
                       backup_max_ids: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """Validate the expanded database; fail the task naming every failed expectation.

    `snapshot`: {table: {"count", "max_id"}} before the migration, or the old {table: count}
    (row-count checks; None skips them). Backup comparison: `backup_conn_id`, or `backup_database`
    on the live Connection's server; neither skips the checksum checks. `backup_max_ids`: the
    backup's {table: max id} when known (:func:`backup_max_ids_of`), saving a scan of the copy.
    Returns the summary (small, for XCom).
    """
    live_url = connection_url(conn_id)
    backup_url = None
    if backup_conn_id:
        backup_url = connection_url(backup_conn_id)
    elif backup_database:
        backup_url = connection_url(conn_id, database=backup_database)
    if run_id is None:
        run_id = _current_run_id()
    return validate_and_report(live_url, backup_url=backup_url, snapshot=snapshot, tables=tables,
                               out_dir=artifact_dir_for(run_id, artifact_dir), backup_max_ids=backup_max_ids)


def backup_max_ids_of(record: Mapping[str, Any], tables: Sequence[str] = TABLES) -> dict[str, int | None] | None:
    """{table: max_id} from a BackupRecord's fingerprints (the bound its rows were settled at,
    see ``backup.row_snapshot``), or None for a record from before max_id was recorded."""
    fingerprints = record.get("fingerprints") or {}
    if not all("max_id" in (fingerprints.get(table) or {}) for table in tables):
        return None
    return {table: fingerprints[table]["max_id"] for table in tables}


def validate_and_report(live_url: str, *, backup_url: str | None, snapshot: Mapping[str, Any] | None,
                        tables: Sequence[str] | None, out_dir: Path,
                        backup_max_ids: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """The Airflow-free core of :func:`validate_migration` (tests call it with URLs directly)."""
    from cutover_kit import validation

    try:
        results, summary = validation.timed_validation(live_url, backup_url=backup_url, snapshot=snapshot,
                                                       tables=tables, backup_max_ids=backup_max_ids)
    except Exception as error:
        # Could not validate at all (database unreachable, ...): retryable, unlike a data defect.
        raise AirflowException(f"GX validation could not run: {error}") from error
    for line in summary.lines:
        (log.info if line.startswith("PASS") else log.error)(line)
    paths = validation.save_artifacts(results, out_dir, summary)
    log.info("GX validation: %d expectations, %d failed, %.2f s; results in %s", summary.expectations,
             summary.failed, summary.seconds, paths[0])
    report = {**summary.as_dict(), "artifacts": [str(path) for path in paths]}
    if summary.failed:
        raise AirflowFailException(
            f"GX validation failed: {summary.failed} of {summary.expectations} expectations: "
            + "; ".join(line.split(" ", 1)[1] for line in summary.lines if not line.startswith("PASS")))
    return report


def _current_run_id() -> str | None:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()["run_id"]
    except Exception:  # noqa: BLE001 - outside a task (tests, CLI): a fixed name
        return None


def build_validation_task(*, snapshot: Any, conn_id: str = "postgres_default", backup_conn_id: str | None = None,
                          backup_database: str | None = None, tables: Sequence[str] | None = None,
                          artifact_dir: str | None = None, task_id: str = "validate_migration_gx") -> Any:
    """Add the validation task to the DAG / TaskGroup being defined; returns its XComArg.

    `snapshot` is usually the XComArg of a :func:`snapshot_row_counts` task (or of a task returning
    :func:`snapshot_from_backup`). Must be called inside a DAG (and, optionally, TaskGroup) context.
    """
    from airflow.sdk import task

    return task(validate_migration, task_id=task_id)(
        snapshot, conn_id=conn_id, backup_conn_id=backup_conn_id, backup_database=backup_database,
        tables=list(tables) if tables else None, artifact_dir=artifact_dir)
