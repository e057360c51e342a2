"""Backups of the shared database that are proven restorable, and the last-resort restore (no Airflow).

* :func:`backup_database` runs ``pg_dump -Fc`` (the client of the server's major version) on a
  snapshot it exported itself, and fingerprints every table **in that same snapshot**. The record
  therefore says exactly what the file contains, even while both apps keep writing.
* :func:`verify_backup` restores the file into a scratch database and compares, per table, the
  restored rows with the live database now and with the fingerprints taken at dump time.
* :func:`restore_database` is the documented last resort: restore into a new database, check it
  against the dump-time fingerprints, then swap it in under the live name within a second
  (connections to the live database are terminated). The previous database is **kept** under a
  new name, so writes made after the backup can still be recovered from it.
* :func:`table_fingerprints` (row count + checksum per table, legacy columns only for the Rails
  tables) is the reusable zero-data-loss check: comparable before and after the expand.

Fingerprints are computed in PostgreSQL: ``count(*)`` and the sum of a 64-bit hash
(``hashtextextended``) of each row's text. Each row's text includes its primary key, so the sum
changes when any row changes, appears or disappears; unlike md5(string_agg(... ORDER BY id)) it
needs no sort and no memory proportional to the table (3M rows: ~2 s instead of ~8 s here).
The password travels to pg_dump / pg_restore in PGPASSWORD, never on a command line.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

# The Rails-era columns: what blue reads and writes, and what must survive every migration step.
LEGACY_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "email", "name", "created_at", "updated_at"),
    "orders": ("id", "user_id", "amount_cents", "status", "created_at", "updated_at"),
    "line_items": ("id", "order_id", "sku", "quantity", "unit_price_cents", "created_at", "updated_at"),
}
# Session settings that fix how rows are rendered as text, so checksums compare across sessions.
_STABLE_TEXT = ("SET DateStyle = 'ISO, MDY'", "SET IntervalStyle = 'postgres'", "SET TimeZone = 'UTC'",
                "SET extra_float_digits = 3", "SET bytea_output = 'hex'")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DUMP_TIMEOUT_SECONDS = 1800
SWAP_TIMEOUT_SECONDS = 10.0


class BackupError(RuntimeError):
    """A backup, verification or restore could not be done; the message says why."""


@dataclass(frozen=True)
class BackupRecord:
    path: str
    bytes: int
    sha256: str
    created_at: str  # ISO 8601, UTC: when the dump's snapshot was taken
    database: str = ""
    schema_version: str = ""
    # table -> {"count", "checksum"} over all columns, taken in the dump's own snapshot.
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackupRecord:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True)
class BackupVerification:
    verified: bool  # the backup restores exactly what was dumped AND equals the live database now
    # table -> live_count, restored_count, live_checksum, restored_checksum, dumped_count, dumped_checksum
    tables: dict[str, dict[str, Any]]
    mismatches: list[str]
    restored_matches_dump: bool = True  # the file is intact and restorable, whatever happened live since
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RestoreReport:
    database: str  # the live name, now holding the restored data
    previous_database: str  # the pre-restore database, kept for forensics (drop it by hand later)
    schema_version: str
    seconds: float
    downtime_seconds: float  # from refusing new connections to the restored database being live


# --------------------------------------------------------------------------------------------
# Fingerprints


def table_fingerprints(dsn: str, tables: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{table: {"count": n, "checksum": hex}}, all tables read in one consistent snapshot.

    users/orders/line_items are fingerprinted over their legacy (Rails) columns only, so the
    result is comparable before and after the expand migration; other tables over all columns.
    """
    with _connect(dsn) as conn:
        return _fingerprints(conn, {table: LEGACY_COLUMNS.get(table) for table in tables})


def _fingerprints(conn: psycopg2.extensions.connection,
                  tables: Mapping[str, tuple[str, ...] | None]) -> dict[str, dict[str, Any]]:
    """Fingerprints in the connection's current transaction (REPEATABLE READ gives one snapshot)."""
    result = {}
    with conn.cursor() as cur:
        for statement in _STABLE_TEXT:
            cur.execute(statement)
        for table, columns in tables.items():
            if not _IDENTIFIER.match(table):
                raise BackupError(f"not a plain table name: {table!r}")
            if columns:
                row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier("t", c) for c in columns))
            else:
                row = sql.SQL("t::text")
            cur.execute(sql.SQL("SELECT count(*), coalesce(sum(hashtextextended({row}, 0)), 0)::text FROM {table} AS t")
                        .format(row=row, table=sql.Identifier(table)))
            count, total = cur.fetchone()
            checksum = hashlib.md5(f"{count}:{total}".encode()).hexdigest()  # noqa: S324 - a label, not security
            result[table] = {"count": count, "checksum": checksum}
    return result


def _snapshot_fingerprints(dsn: str) -> dict[str, dict[str, Any]]:
    """All-column fingerprints of every public table of `dsn`, in one snapshot."""
    with _connect(dsn) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        fingerprints = _fingerprints(conn, {table: None for table in _all_tables(conn)})
        conn.rollback()
    return fingerprints


def _all_tables(conn: psycopg2.extensions.connection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        return [row[0] for row in cur.fetchall()]


# --------------------------------------------------------------------------------------------
# Backup


def backup_database(dsn: str, backup_dir: Path | str) -> BackupRecord:
    """pg_dump -Fc into `backup_dir`; the record carries size, sha256 and dump-time fingerprints."""
    started = time.monotonic()
    params = _dsn_params(dsn)
    directory = Path(backup_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with _connect(dsn) as conn:
        pg_dump = _client_tool(conn, "pg_dump")
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot(), now() AT TIME ZONE 'UTC', "
                        "(SELECT coalesce(max(version), '') FROM schema_migrations)")
            snapshot, taken_at, schema_version = cur.fetchone()
        created_at = taken_at.replace(tzinfo=timezone.utc).isoformat(timespec="seconds")
        stamp = taken_at.strftime("%Y%m%dT%H%M%SZ")
        final = directory / f"{params['dbname']}-{stamp}-{schema_version or 'noversion'}.dump"
        partial = final.with_suffix(".dump.partial")
        argv = [pg_dump, "--format=custom", "--compress=1", f"--snapshot={snapshot}", "--no-password",
                f"--file={partial}", f"--dbname={_conninfo(_client_argv_params(params))}"]
        # pg_dump reads the same snapshot while this transaction (which must stay open) fingerprints it.
        dump = subprocess.Popen(argv, env=_client_env(params), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            fingerprints = _fingerprints(conn, {table: None for table in _all_tables(conn)})
            _, stderr = dump.communicate(timeout=DUMP_TIMEOUT_SECONDS)
        except BaseException:
            dump.kill()
            dump.wait()
            partial.unlink(missing_ok=True)
            raise
        conn.rollback()
    if dump.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed (exit {dump.returncode}): {stderr.strip()}")
    _fsync(partial)
    os.replace(partial, final)
    return BackupRecord(path=str(final), bytes=final.stat().st_size, sha256=_sha256(final), created_at=created_at,
                        database=params["dbname"], schema_version=schema_version, fingerprints=fingerprints,
                        seconds=round(time.monotonic() - started, 3))


# --------------------------------------------------------------------------------------------
# Verify


def verify_backup(dsn: str, record: BackupRecord, scratch_db: str = "cutover_verify") -> BackupVerification:
    """Restore `record` into `scratch_db` (dropped first and afterwards) and compare every table
    with the live database now and with the dump-time fingerprints."""
    started = time.monotonic()
    params = _dsn_params(dsn)
    _check_scratch_name(scratch_db, params["dbname"])
    mismatches = _file_problems(record)
    if mismatches:
        return BackupVerification(verified=False, tables={}, mismatches=mismatches, restored_matches_dump=False,
                                  seconds=round(time.monotonic() - started, 3))
    with _connect(dsn) as conn:
        pg_restore = _client_tool(conn, "pg_restore")
        conn.autocommit = True
        try:
            _create_database_like(conn, scratch_db, params["dbname"])
            _pg_restore(pg_restore, record, {**params, "dbname": scratch_db})
            # Both sides at once: each is one CPU-bound scan per table in its own backend.
            with ThreadPoolExecutor(max_workers=2) as pool:
                restored_future = pool.submit(_snapshot_fingerprints, _conninfo({**params, "dbname": scratch_db}))
                live = _snapshot_fingerprints(dsn)
                restored = restored_future.result()
        finally:
            conn.autocommit = True
            _drop_database(conn, scratch_db)
    dumped = record.fingerprints
    tables: dict[str, dict[str, Any]] = {}
    intact = True
    for table in sorted(set(live) | set(restored) | set(dumped)):
        entry = {
            "live_count": live.get(table, {}).get("count"), "restored_count": restored.get(table, {}).get("count"),
            "live_checksum": live.get(table, {}).get("checksum"),
            "restored_checksum": restored.get(table, {}).get("checksum"),
            "dumped_count": dumped.get(table, {}).get("count"), "dumped_checksum": dumped.get(table, {}).get("checksum"),
        }
        tables[table] = entry
        if dumped and (entry["restored_count"], entry["restored_checksum"]) != (entry["dumped_count"], entry["dumped_checksum"]):
            intact = False
            mismatches.append(f"{table}: the backup does not restore what was dumped "
                              f"({_describe(entry['dumped_count'], entry['dumped_checksum'])} dumped, "
                              f"{_describe(entry['restored_count'], entry['restored_checksum'])} restored)")
        if (entry["live_count"], entry["live_checksum"]) != (entry["restored_count"], entry["restored_checksum"]):
            mismatches.append(f"{table}: live {_describe(entry['live_count'], entry['live_checksum'])}, "
                              f"restored {_describe(entry['restored_count'], entry['restored_checksum'])}")
    return BackupVerification(verified=not mismatches, tables=tables, mismatches=mismatches,
                              restored_matches_dump=intact, seconds=round(time.monotonic() - started, 3))


def _describe(count: int | None, checksum: str | None) -> str:
    return "no such table" if count is None else f"{count} rows, checksum {checksum[:12]}"


# --------------------------------------------------------------------------------------------
# Last-resort restore


def restore_database(dsn: str, record: BackupRecord) -> RestoreReport:
    """Replace the live database with the backup. LAST RESORT: writes after the backup leave the
    live database (they stay in the kept previous database, named in the report).

    Restores into a new database while the apps keep running, checks it against the dump-time
    fingerprints, then refuses new connections to the live database, terminates the open ones and
    swaps the names. Needs CREATEDB and ownership of the live database (no superuser).
    """
    started = time.monotonic()
    params = _dsn_params(dsn)
    live_name = params["dbname"]
    problems = _file_problems(record)
    if problems:
        raise BackupError(f"refusing to restore {record.path}: {'; '.join(problems)}")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    incoming, previous = f"{live_name[:40]}_restore_{stamp}", f"{live_name[:33]}_before_restore_{stamp}"
    maintenance = _conninfo({**params, "dbname": "postgres"})
    with _connect(maintenance) as admin:
        admin.autocommit = True
        pg_restore = _client_tool(admin, "pg_restore")
        _create_database_like(admin, incoming, live_name)
        try:
            _pg_restore(pg_restore, record, {**params, "dbname": incoming})
            restored = _snapshot_fingerprints(_conninfo({**params, "dbname": incoming}))
            with _connect(_conninfo({**params, "dbname": incoming})) as restored_conn, restored_conn.cursor() as cur:
                cur.execute("SELECT coalesce(max(version), '') FROM schema_migrations")
                schema_version = cur.fetchone()[0]
            if record.fingerprints and restored != record.fingerprints:
                differing = sorted(t for t in set(restored) | set(record.fingerprints)
                                   if restored.get(t) != record.fingerprints.get(t))
                raise BackupError(f"restored copy differs from what was dumped in {differing}; live database untouched")
        except BaseException:
            _drop_database(admin, incoming)
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
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (live,))
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
            _drop_database(admin, incoming)
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


# --------------------------------------------------------------------------------------------
# Helpers


@contextmanager
def _connect(dsn: str) -> Iterator[psycopg2.extensions.connection]:
    try:
        conn = psycopg2.connect(dsn, connect_timeout=5, application_name="cutover-backup")
    except psycopg2.Error as error:
        raise BackupError(f"cannot connect to the database: {str(error).strip()}") from error
    try:
        yield conn
    finally:
        conn.close()


def _dsn_params(dsn: str) -> dict[str, str]:
    params = psycopg2.extensions.parse_dsn(dsn)
    if not params.get("dbname"):
        raise BackupError("the DSN names no database (dbname)")
    return params


def _conninfo(params: Mapping[str, str]) -> str:
    return psycopg2.extensions.make_dsn(**params)


def _client_env(params: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = params["password"]
    return env


def _client_argv_params(params: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in params.items() if key != "password"}


def _client_tool(conn: psycopg2.extensions.connection, tool: str) -> str:
    """Path of pg_dump / pg_restore of the server's major version (older clients refuse newer servers)."""
    major = conn.server_version // 10000
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin/{tool}")]
    if os.environ.get("SANDBOX_PG_BINDIR"):
        candidates.insert(0, Path(os.environ["SANDBOX_PG_BINDIR"]) / tool)
    on_path = shutil.which(tool)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.exists():
            version = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, timeout=10).stdout
            found = re.search(r"(\d+)(?:\.\d+)?", version)
            if found and int(found.group(1)) >= major:
                return str(candidate)
    raise BackupError(f"no {tool} for PostgreSQL {major} (looked in {', '.join(map(str, candidates))}); "
                      f"install postgresql-client-{major}")


def _pg_restore(pg_restore: str, record: BackupRecord, params: Mapping[str, str]) -> None:
    argv = [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--no-password", "--jobs=2",
            f"--dbname={_conninfo(_client_argv_params(params))}", record.path]
    done = subprocess.run(argv, env=_client_env(params), capture_output=True, text=True, timeout=DUMP_TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise BackupError(f"pg_restore into {params['dbname']} failed (exit {done.returncode}): {done.stderr.strip()}")


def _create_database_like(conn: psycopg2.extensions.connection, name: str, like: str) -> None:
    """(Re)create `name` empty, with the encoding and locale of `like`."""
    _drop_database(conn, name)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = %s", (like,))
        found = cur.fetchone()
        if found is None:
            raise BackupError(f"database {like} does not exist")
        encoding, collate, ctype = found
        cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Identifier(name), sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)))


def _drop_database(conn: psycopg2.extensions.connection, name: str) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _check_scratch_name(scratch_db: str, live: str) -> None:
    if not _IDENTIFIER.match(scratch_db):
        raise BackupError(f"scratch database name {scratch_db!r} must be a plain lower-case identifier")
    if scratch_db in (live, "postgres", "template0", "template1"):
        raise BackupError(f"refusing to use {scratch_db!r} as the scratch database: it would be dropped")


def _file_problems(record: BackupRecord) -> list[str]:
    path = Path(record.path)
    if not path.is_file():
        return [f"backup file {path} is missing"]
    problems = []
    if path.stat().st_size != record.bytes:
        problems.append(f"backup file {path} has {path.stat().st_size} bytes, the record says {record.bytes}")
    elif _sha256(path) != record.sha256:
        problems.append(f"backup file {path} does not match its recorded sha256 (corrupted or replaced)")
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
