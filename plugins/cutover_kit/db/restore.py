"""Restoring a backup (no Airflow).

* :func:`restore_to_scratch` restores the file into a named scratch database and keeps it (for a
  comparison with the live database, e.g. stage 2's checksums); :func:`drop_scratch` removes it.
* :func:`restore_database` is the documented last resort: restore into a new database, check it
  against the dump-time fingerprints, then swap it in under the live name within a second
  (connections to the live database are terminated). The previous database is **kept** under a
  new name, so writes made after the backup can still be recovered from it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from cutover_kit.db.backup import BackupRecord, file_problems, methods_of
from cutover_kit.db.errors import BackupError, BackupUnusable
from cutover_kit.db.fingerprints import same_content, snapshot_fingerprints
from cutover_kit.db.pg_client import (DUMP_TIMEOUT_SECONDS, IDENTIFIER, client_tool, conninfo, connect,
                                      create_database_like, drop_database, dsn_params, run_pg_restore)

SWAP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RestoreReport:
    database: str  # the live name, now holding the restored data
    previous_database: str  # the pre-restore database, kept for forensics (drop it by hand later)
    schema_version: str
    seconds: float
    downtime_seconds: float  # from refusing new connections to the restored database being live


def restore_to_scratch(dsn: str, record: BackupRecord | Mapping[str, Any], scratch_db: str) -> str:
    """Restore `record` into `scratch_db` on the server of `dsn` and KEEP it; returns its DSN.

    `scratch_db` is dropped first if it exists (it must not be the live database or a system
    one) and re-created with the live database's encoding and locale. The file is checked against
    its recorded size and sha256 first (BackupUnusable when it does not match). A failed restore
    drops the scratch database again. Drop it with :func:`drop_scratch` when done.

    The copy is for comparisons (:func:`restore_for_comparison`): tables and rows, no indexes,
    constraints or triggers, unlogged.
    """
    return _restore_into(dsn, record, scratch_db, restore_for_comparison)


def restore_full_copy(dsn: str, record: BackupRecord | Mapping[str, Any], copy_db: str) -> str:
    """Restore `record` in full (tables, rows, keys, indexes, triggers) into `copy_db` on the
    server of `dsn` and keep it; returns its DSN. For instances that must *serve* from a copy
    (stages 6 and 7), unlike :func:`restore_to_scratch`'s comparison copy without indexes.
    Same checks and clean-up as :func:`restore_to_scratch`; drop it with :func:`drop_scratch`."""
    return _restore_into(dsn, record, copy_db, lambda pg_restore, rec, target: run_pg_restore(pg_restore, rec.path, target))


def _restore_into(dsn: str, record: BackupRecord | Mapping[str, Any], database: str, restore) -> str:
    """The checks and clean-up both restores share: a scratch name that is not the source, a usable
    backup file, a fresh database like the source; `restore(pg_restore, record, target_params)`
    fills it, and a failure drops it. Returns the new database's DSN."""
    rec = record if isinstance(record, BackupRecord) else BackupRecord.from_dict(record)
    params = dsn_params(dsn)
    check_scratch_name(database, params["dbname"])
    problems = file_problems(rec)
    if problems:
        raise BackupUnusable(f"backup {rec.path} not usable: {'; '.join(problems)}")
    with connect(dsn) as conn:
        conn.autocommit = True
        create_database_like(conn, database, params["dbname"])
        try:
            restore(client_tool(conn, "pg_restore"), rec, {**params, "dbname": database})
        except BaseException:
            drop_database(conn, database)
            raise
    return conninfo({**params, "dbname": database})


def drop_scratch(dsn: str, scratch_db: str) -> None:
    """Drop `scratch_db` (if it exists) on the server of `dsn`; never the live or a system database."""
    params = dsn_params(dsn)
    check_scratch_name(scratch_db, params["dbname"])
    with connect(dsn) as conn:
        conn.autocommit = True
        drop_database(conn, scratch_db)


def restore_database(dsn: str, record: BackupRecord) -> RestoreReport:
    """Replace the live database with the backup. LAST RESORT: writes after the backup leave the
    live database (they stay in the kept previous database, named in the report).

    Restores into a new database while the apps keep running, checks it against the dump-time
    fingerprints, then refuses new connections to the live database, terminates the open ones and
    swaps the names. Needs CREATEDB and ownership of the live database (no superuser).
    """
    started = time.monotonic()
    params = dsn_params(dsn)
    live_name = params["dbname"]
    problems = file_problems(record)
    if problems:
        raise BackupError(f"refusing to restore {record.path}: {'; '.join(problems)}")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    incoming, previous = f"{live_name[:40]}_restore_{stamp}", f"{live_name[:33]}_before_restore_{stamp}"
    maintenance = conninfo({**params, "dbname": "postgres"})
    with connect(maintenance) as admin:
        admin.autocommit = True
        pg_restore = client_tool(admin, "pg_restore")
        create_database_like(admin, incoming, live_name)
        try:
            run_pg_restore(pg_restore, record.path, {**params, "dbname": incoming})
            restored = snapshot_fingerprints(conninfo({**params, "dbname": incoming}), methods_of(record))
            with connect(conninfo({**params, "dbname": incoming})) as restored_conn, restored_conn.cursor() as cur:
                cur.execute("SELECT coalesce(max(version), '') FROM schema_migrations")
                schema_version = cur.fetchone()[0]
            if record.fingerprints and any(not same_content(restored.get(t), record.fingerprints.get(t))
                                           for t in set(restored) | set(record.fingerprints)):
                differing = sorted(t for t in set(restored) | set(record.fingerprints)
                                   if not same_content(restored.get(t), record.fingerprints.get(t)))
                raise BackupError(f"restored copy differs from what was dumped in {differing}; live database untouched")
        except BaseException:
            drop_database(admin, incoming)
            raise
        downtime = _swap(admin, live_name, incoming, previous)
    return RestoreReport(database=live_name, previous_database=previous, schema_version=schema_version,
                         seconds=round(time.monotonic() - started, 3), downtime_seconds=round(downtime, 3))


def _swap(admin: psycopg2.extensions.connection, live: str, incoming: str, previous: str) -> float:
    """Rename live -> previous and incoming -> live; returns how long `live` refused connections."""
    with admin.cursor() as cur:
        began = time.monotonic()
        cur.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 0").format(sql.Identifier(live)))
        try:
            deadline = began + SWAP_TIMEOUT_SECONDS
            while True:
                # Client sessions only: an autovacuum worker counts as a superuser process, which a
                # non-superuser may not terminate; the RENAME below makes autovacuum leave itself.
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                            (live,))
                try:
                    cur.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(live), sql.Identifier(previous)))
                    break
                except psycopg2.errors.ObjectInUse:
                    if time.monotonic() > deadline:
                        raise BackupError(f"sessions kept reconnecting to {live} for {SWAP_TIMEOUT_SECONDS:g}s; "
                                          f"nothing was swapped") from None
                    time.sleep(0.05)
        except BaseException:
            cur.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT -1").format(sql.Identifier(live)))
            drop_database(admin, incoming)
            raise
        try:
            cur.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(incoming), sql.Identifier(live)))
        except psycopg2.Error as error:
            cur.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(previous), sql.Identifier(live)))
            cur.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT -1").format(sql.Identifier(live)))
            raise BackupError(f"could not rename the restored database into place ({error}); "
                              f"the previous database is live again") from error
        downtime = time.monotonic() - began
        # The kept copy stays reachable for recovering writes made after the backup.
        cur.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT -1").format(sql.Identifier(previous)))
    return downtime


def restore_for_comparison(pg_restore: str, record: BackupRecord, params: Mapping[str, str]) -> list[str]:
    """Restore what a count-and-checksum comparison needs, after proving the whole archive reads.

    1. ``pg_restore --list``: the table of contents of the whole archive (pre-data, data and
       post-data) reads back; a truncated or damaged archive fails here. Returns its entries.
    2. The pre-data section (types, functions, tables, sequences), then the tables switched to
       UNLOGGED (a throwaway copy needs no WAL: ~10 % of the load here) and autovacuum off.
    3. The data section with --jobs=2: every row of every table.

    Left out: the post-data section (primary keys, indexes, foreign keys, triggers). Building
    them was most of a full restore (1M orders: 35 s of 35 s full vs 21 s without, at load 14)
    and proves nothing about the rows; a full restore is :func:`restore_database`.
    """
    listed = subprocess.run([pg_restore, "--list", record.path], capture_output=True, text=True,
                            timeout=DUMP_TIMEOUT_SECONDS)
    entries = [line for line in listed.stdout.splitlines() if line.strip() and not line.startswith(";")]
    if listed.returncode != 0 or not entries:
        raise BackupUnusable(f"pg_restore cannot read the table of contents of {record.path} "
                             f"(exit {listed.returncode}): {listed.stderr.strip() or 'no entries'}")
    run_pg_restore(pg_restore, record.path, params, "pre-data")
    with connect(conninfo(params)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            # No autovacuum either: it would vacuum the freshly loaded copy while it is compared
            # (CPU the comparison needs) and sit in it when it is dropped.
            cur.execute("SELECT format('ALTER TABLE %I.%I SET UNLOGGED, SET (autovacuum_enabled = false)', "
                        "schemaname, tablename) FROM pg_tables "
                        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
            for (statement,) in cur.fetchall():
                cur.execute(statement)
    run_pg_restore(pg_restore, record.path, params, "data")
    return entries


def check_scratch_name(scratch_db: str, live: str) -> None:
    if not IDENTIFIER.match(scratch_db):
        raise BackupError(f"scratch database name {scratch_db!r} must be a plain lower-case identifier")
    if scratch_db in (live, "postgres", "template0", "template1"):
        raise BackupError(f"refusing to use {scratch_db!r} as the scratch database: it would be dropped")
