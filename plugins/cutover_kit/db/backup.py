"""Backups of the shared database that are proven restorable, and the last-resort restore (no Airflow).

* :func:`backup_database` runs ``pg_dump -Fc`` (the client of the server's major version,
  uncompressed by default: :data:`DUMP_COMPRESSION`) on a snapshot it exported itself, and
  fingerprints every table **in that same snapshot**. The record therefore says exactly what the
  file contains, even while both apps keep writing.
* :func:`verify_backup` lists the archive's whole table of contents, restores its tables and rows
  into a scratch database (no indexes, constraints or triggers: a comparison needs none) and
  compares, per table, the restored rows with the fingerprints taken at dump time and, unless
  told not to, with the live database now.
* :func:`restore_to_scratch` restores the file the same way into a named scratch database and
  keeps it (for a comparison with the live database, e.g. stage 2's checksums);
  :func:`drop_scratch` removes it.
* :func:`restore_database` is the documented last resort: restore into a new database, check it
  against the dump-time fingerprints, then swap it in under the live name within a second
  (connections to the live database are terminated). The previous database is **kept** under a
  new name, so writes made after the backup can still be recovered from it.
* :func:`table_fingerprints` (row count + checksum per table, legacy columns only for the Rails
  tables) is the reusable zero-data-loss check: comparable before and after the expand.
* :func:`row_snapshot` gives ``{table: {"count", "max_id"}}``: the rows that exist now, named by
  their id range, so that later checks can tell them from rows inserted afterwards.

Pre-existing rows vs rows inserted later
----------------------------------------
Both apps keep inserting while stage 2 runs; they never delete. Ids come from sequences, so a row
inserted after a snapshot normally has an id above the snapshot's ``max(id)``. Not always: a
transaction can take its id before the snapshot and commit after it, while a later id is already
visible. Its row then appears *below* ``max(id)`` once it commits, and "rows with id <= max_id =
snapshot count" would fail on a healthy database. So the bound recorded is *settled*
(:func:`_settle_id_bounds`): after the snapshot, wait for the transactions then writing to the
table (an INSERT holds RowExclusiveLock on its table from before it takes its id until it ends),
then count again; when rows appeared below ``max(id)``, lower the bound to just below the lowest
of them. Normally nothing appeared and the bound is ``max(id)`` itself.

Fingerprints are computed in PostgreSQL: ``count(*)`` and the sum of a 64-bit hash of each row
(``hash_record_extended``: the typed hash of every column value, half the time of hashing the row
rendered as text; enums and other types whose hash is not their value's are hashed as text; each
fingerprint says which method made it, so records made with the older text method still verify).
Each row includes its primary key, so the sum changes when any row changes, appears or
disappears; unlike md5(string_agg(... ORDER BY id)) it needs no sort and no memory proportional to
the table.
The password travels to pg_dump / pg_restore in PGPASSWORD, never on a command line.
"""

from __future__ import annotations

import hashlib
import logging
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

log = logging.getLogger(__name__)

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
SETTLE_TIMEOUT_SECONDS = 30.0  # longest wait for the write transactions open at a snapshot
FINGERPRINT_METHODS = ("record", "text")
# pg_dump's gzip level. 0: on 2 cores gzip -1 cost ~5 s of 12 for the 1M-order database (87 MB
# compressed, 337 MB not); PostgreSQL 15's pg_dump has no cheaper compressor (lz4/zstd: 16+).
DUMP_COMPRESSION = 0


class BackupError(RuntimeError):
    """A backup, verification or restore could not be done; the message says why."""


class BackupUnusable(BackupError):
    """The backup file itself is missing, truncated or altered: retrying cannot help."""


@dataclass(frozen=True)
class BackupRecord:
    path: str
    bytes: int
    sha256: str
    created_at: str  # ISO 8601, UTC: when the dump's snapshot was taken
    database: str = ""
    schema_version: str = ""
    # table -> {"count", "checksum"} over all columns, taken in the dump's own snapshot; tables with
    # an integer id also carry "max_id" (the settled bound of the rows the dump holds, normally
    # max(id); see "Pre-existing rows" above) and "count_to_max_id" (rows with id <= max_id).
    # Records written before max_id existed lack both.
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
    archive_entries: int = 0  # entries of the archive's table of contents (pg_restore --list), all read back

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
    """{table: {"count": n, "checksum": hex[, "max_id": m]}}, all tables read in one consistent
    snapshot (max_id: max(id), NULL when empty, for tables with an integer id column).

    users/orders/line_items are fingerprinted over their legacy (Rails) columns only, so the
    result is comparable before and after the expand migration; other tables over all columns.
    """
    with _connect(dsn) as conn:
        return _fingerprints(conn, {table: LEGACY_COLUMNS.get(table) for table in tables})


def _fingerprints(conn: psycopg2.extensions.connection, tables: Mapping[str, tuple[str, ...] | None],
                  methods: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Fingerprints in the connection's current transaction (REPEATABLE READ gives one snapshot).

    `methods` ({table: "record" | "text"}) fixes how a table's rows are hashed, so a restored copy
    is hashed exactly as the dump was (a record's fingerprints say which method made them: "hash";
    records without it used "text"). Default "record": see :func:`_hash_rows`.
    """
    result = {}
    with conn.cursor() as cur:
        for statement in _STABLE_TEXT:
            cur.execute(statement)
        with_id = _tables_with_integer_id(cur, list(tables))
        for table, columns in tables.items():
            if not _IDENTIFIER.match(table):
                raise BackupError(f"not a plain table name: {table!r}")
            method = (methods or {}).get(table, "record")
            if method not in FINGERPRINT_METHODS:
                raise BackupError(f"{table}: unknown fingerprint method {method!r}")
            count, total, highest = _hash_rows(cur, table, columns, method, table in with_id)
            checksum = hashlib.md5(f"{count}:{total}".encode()).hexdigest()  # noqa: S324 - a label, not security
            result[table] = {"count": count, "checksum": checksum, "hash": method}
            if table in with_id:
                result[table]["max_id"] = highest
    return result


# Types whose hash depends on the value alone: hashed as they are. Any other type (enums hash
# their label's OID, which differs in a restored copy; reg* types are OIDs) is hashed as text.
_VALUE_HASHED_TYPES = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8", "bool", "text", "varchar",
                                 "bpchar", "date", "timestamp", "timestamptz", "uuid", "bytea"})


def _hash_rows(cur: psycopg2.extensions.cursor, table: str, columns: tuple[str, ...] | None, method: str,
               with_id: bool) -> tuple[int, str, int | None]:
    """count(*), the sum of a 64-bit hash per row (as text), and max(id) of `table` (one scan),
    over `columns` (all when None).

    "record": ``hash_record_extended`` of the row's values, each by its type's hash function
    (columns of other types than :data:`_VALUE_HASHED_TYPES` cast to text first): about half the
    time of "text", ``hashtextextended`` of the row rendered as text (session settings fixed by
    _STABLE_TEXT; the method of records written before "record" existed).
    """
    if method == "record":
        cur.execute("SELECT a.attname, t.typname FROM pg_attribute AS a JOIN pg_type AS t ON t.oid = a.atttypid "
                    "WHERE a.attrelid = to_regclass(quote_ident(%s)) AND a.attnum > 0 AND NOT a.attisdropped "
                    "ORDER BY a.attnum", (table,))
        types = dict(cur.fetchall())
        missing = [c for c in columns or () if c not in types]
        if missing:
            raise BackupError(f"{table} has no column {', '.join(missing)}")
        values = [sql.Identifier("t", c) if types[c] in _VALUE_HASHED_TYPES else sql.SQL("{}::text").format(sql.Identifier("t", c))
                  for c in (columns or tuple(types))]
        row = sql.SQL("hash_record_extended(ROW({}), 0)").format(sql.SQL(", ").join(values))
    elif columns:
        row = sql.SQL("hashtextextended(ROW({})::text, 0)").format(sql.SQL(", ").join(sql.Identifier("t", c) for c in columns))
    else:
        row = sql.SQL("hashtextextended(t::text, 0)")
    max_id = sql.SQL("max(t.id)" if with_id else "NULL::bigint")
    cur.execute(sql.SQL("SELECT count(*), coalesce(sum({row}), 0)::text, {max_id} FROM {table} AS t").format(
        row=row, max_id=max_id, table=sql.Identifier(table)))
    return cur.fetchone()


def _tables_with_integer_id(cur: psycopg2.extensions.cursor, tables: list[str]) -> set[str]:
    cur.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND column_name = 'id' AND data_type IN ('smallint', 'integer', 'bigint') "
                "AND table_name = ANY(%s)", (tables,))
    return {row[0] for row in cur.fetchall()}


def _same_content(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal row count and checksum (max_id is a bound, not content: a settled one may be lower)."""
    return (a or {}).get("count") == (b or {}).get("count") and (a or {}).get("checksum") == (b or {}).get("checksum")


# --------------------------------------------------------------------------------------------
# Pre-existing rows: a snapshot's id bounds


def row_snapshot(dsn: str, tables: Iterable[str]) -> dict[str, dict[str, int | None]]:
    """{table: {"count": n, "max_id": m}} now, all tables in one snapshot: the table's rows are
    exactly the `n` rows with id <= `m` (m is the settled bound, see "Pre-existing rows" above;
    None for an empty table, whose every later row is new). Counted in PostgreSQL."""
    tables = list(tables)
    with _connect(dsn) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        found = {}
        with conn.cursor() as cur:
            missing = sorted(set(tables) - _tables_with_integer_id(cur, tables))
            if missing:
                raise BackupError(f"no integer id column in {', '.join(missing)}: rows cannot be bounded by id")
            for table in tables:
                cur.execute(sql.SQL("SELECT count(*), max(id) FROM {}").format(sql.Identifier(table)))
                count, max_id = cur.fetchone()
                found[table] = {"count": count, "max_id": max_id}
        settled = _settle_id_bounds(conn, dsn, found)
        conn.rollback()
    return {table: {"count": settled[table]["count_to_max_id"], "max_id": settled[table]["max_id"]}
            for table in tables}


def _settle_id_bounds(snapshot: psycopg2.extensions.connection, dsn: str,
                      found: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int | None]]:
    """{table: {"max_id", "count_to_max_id"}} for the tables of `found` ({table: {"count",
    "max_id"}} as seen by `snapshot`, a REPEATABLE READ transaction that stays open).

    Waits (up to SETTLE_TIMEOUT_SECONDS) for the transactions writing to those tables right now,
    which include every transaction that took an id before the snapshot and has not committed,
    then counts rows with id <= max_id again in a fresh statement. Rows that appeared there were
    committed after the snapshot: the bound drops below the lowest of them, found by bisection on
    range counts near the top of the id range (a few milliseconds; nothing leaves PostgreSQL).
    """
    bounded = {table: dict(entry) for table, entry in found.items() if entry.get("max_id") is not None}
    settled: dict[str, dict[str, int | None]] = {
        table: {"max_id": entry.get("max_id"), "count_to_max_id": entry.get("count")} for table, entry in found.items()}
    if not bounded:
        return settled
    with _connect(dsn) as now_conn:
        now_conn.autocommit = True  # every statement sees what is committed by then
        with now_conn.cursor() as now, snapshot.cursor() as then:
            _wait_for_writers(now, sorted(bounded), exclude=(snapshot.get_backend_pid(),))
            for table, entry in bounded.items():
                max_id, count = int(entry["max_id"]), int(entry["count"])
                appeared = _count_ids(now, table, None, max_id) - count
                if appeared <= 0:
                    continue
                lowest = _lowest_new_id(then, now, table, max_id, appeared)
                kept = count - _count_ids(then, table, lowest - 1, max_id)
                log.info("%s: %d row(s) committed after the snapshot below its max id %d (lowest %d); "
                         "bound lowered to %d", table, appeared, max_id, lowest, lowest - 1)
                settled[table] = {"max_id": lowest - 1, "count_to_max_id": kept}
    return settled


def _wait_for_writers(cur: psycopg2.extensions.cursor, tables: list[str], exclude: tuple[int, ...]) -> None:
    """Wait until the transactions now holding RowExclusiveLock on `tables` have ended."""
    cur.execute("SELECT DISTINCT l.virtualtransaction FROM pg_locks AS l "
                "WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock' AND l.granted "
                "AND l.relation IN (SELECT to_regclass(quote_ident(t)) FROM unnest(%s::text[]) AS t) "
                "AND l.pid <> pg_backend_pid() AND NOT l.pid = ANY(%s)", (tables, list(exclude)))
    writers = [row[0] for row in cur.fetchall()]
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while writers:
        cur.execute("SELECT array_agg(DISTINCT virtualxid), array_agg(DISTINCT pid) FROM pg_locks "
                    "WHERE locktype = 'virtualxid' AND virtualxid = ANY(%s)", (writers,))
        still, pids = cur.fetchone()
        if not still:
            return
        if time.monotonic() > deadline:
            log.warning("write transactions of pids %s on %s stayed open %gs after the snapshot; if one "
                        "of them commits a row below the snapshot's max id, the row-count check will "
                        "report it", sorted(pids), ", ".join(tables), SETTLE_TIMEOUT_SECONDS)
            return
        writers = still
        time.sleep(0.02)


def _count_ids(cur: psycopg2.extensions.cursor, table: str, above: int | None, up_to: int) -> int:
    """Rows of `table` with above < id <= up_to (no lower limit when `above` is None)."""
    cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE id <= %s AND (%s::bigint IS NULL OR id > %s)")
                .format(sql.Identifier(table)), (up_to, above, above))
    return int(cur.fetchone()[0])


def _lowest_new_id(then: psycopg2.extensions.cursor, now: psycopg2.extensions.cursor, table: str,
                   max_id: int, appeared: int) -> int:
    """Lowest id <= max_id visible `now` but not `then`, given `appeared` such rows (no deletes)."""
    def all_above(bound: int) -> bool:  # are all the new rows above `bound`?
        return _count_ids(now, table, bound, max_id) - _count_ids(then, table, bound, max_id) >= appeared

    high, step = max_id, 1  # all_above(high) is false: no row is above max_id within (.., max_id]
    low = max_id - step
    while not all_above(low):  # gallop down: new rows sit near the top
        high, step = low, step * 4
        low = max_id - step
    while high - low > 1:
        middle = (low + high) // 2
        if all_above(middle):
            low = middle
        else:
            high = middle
    return high


def _snapshot_fingerprints(dsn: str, methods: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """All-column fingerprints of every public table of `dsn`, in one snapshot (`methods`: see
    :func:`_fingerprints`)."""
    with _connect(dsn) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        fingerprints = _fingerprints(conn, {table: None for table in _all_tables(conn)}, methods)
        conn.rollback()
    return fingerprints


def _methods_of(record: BackupRecord) -> dict[str, str]:
    """How each table of `record` was fingerprinted (records from before "hash" used text)."""
    return {table: entry.get("hash", "text") for table, entry in record.fingerprints.items()}


def _all_tables(conn: psycopg2.extensions.connection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        return [row[0] for row in cur.fetchall()]


# --------------------------------------------------------------------------------------------
# Backup


def backup_database(dsn: str, backup_dir: Path | str, compress: int = DUMP_COMPRESSION) -> BackupRecord:
    """pg_dump -Fc into `backup_dir` (gzip level `compress`, 0 = none); the record carries size,
    sha256 and dump-time fingerprints."""
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
        argv = [pg_dump, "--format=custom", f"--compress={int(compress)}", f"--snapshot={snapshot}", "--no-password",
                f"--file={partial}", f"--dbname={_conninfo(_client_argv_params(params))}"]
        # pg_dump reads the same snapshot while this transaction (which must stay open) fingerprints it.
        dump = subprocess.Popen(argv, env=_client_env(params), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            fingerprints = _fingerprints(conn, {table: None for table in _all_tables(conn)})
            for table, bound in _settle_id_bounds(conn, dsn, fingerprints).items():
                if "max_id" in fingerprints[table]:
                    fingerprints[table].update(bound)
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


def verify_backup(dsn: str, record: BackupRecord, scratch_db: str = "cutover_verify",
                  compare_live: bool = True) -> BackupVerification:
    """Restore `record` into `scratch_db` (dropped first and afterwards) and compare every table
    with the dump-time fingerprints and, when `compare_live`, with the live database now.

    What is proven, and how (see :func:`_restore_for_comparison`): the archive's whole table of
    contents reads back, and every table's rows restore to exactly what was dumped. The scratch
    copy gets no indexes, constraints or triggers (the archive's post-data section): counts and
    checksums do not need them, and building them was most of the restore time. Restoring
    *everything* is :func:`restore_database`'s job, tested on its own.

    `compare_live=False` skips the second full pass over the live database: while the apps keep
    writing it cannot equal the dump anyway, and the cutover decides on ``restored_matches_dump``
    only. `verified` then means exactly that.
    """
    started = time.monotonic()
    params = _dsn_params(dsn)
    _check_scratch_name(scratch_db, params["dbname"])
    mismatches = _file_problems(record)
    if mismatches:
        return BackupVerification(verified=False, tables={}, mismatches=mismatches, restored_matches_dump=False,
                                  seconds=round(time.monotonic() - started, 3))
    methods = _methods_of(record)
    with _connect(dsn) as conn:
        pg_restore = _client_tool(conn, "pg_restore")
        conn.autocommit = True
        try:
            _create_database_like(conn, scratch_db, params["dbname"])
            entries = _restore_for_comparison(pg_restore, record, {**params, "dbname": scratch_db})
            restored_dsn = _conninfo({**params, "dbname": scratch_db})
            if compare_live:
                # Both sides at once: each is one CPU-bound scan per table in its own backend.
                with ThreadPoolExecutor(max_workers=2) as pool:
                    restored_future = pool.submit(_snapshot_fingerprints, restored_dsn, methods)
                    live = _snapshot_fingerprints(dsn, methods)
                    restored = restored_future.result()
            else:
                live, restored = {}, _snapshot_fingerprints(restored_dsn, methods)
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
        if compare_live and (entry["live_count"], entry["live_checksum"]) != (entry["restored_count"], entry["restored_checksum"]):
            mismatches.append(f"{table}: live {_describe(entry['live_count'], entry['live_checksum'])}, "
                              f"restored {_describe(entry['restored_count'], entry['restored_checksum'])}")
    return BackupVerification(verified=not mismatches, tables=tables, mismatches=mismatches,
                              restored_matches_dump=intact, seconds=round(time.monotonic() - started, 3),
                              archive_entries=len(entries))


def _describe(count: int | None, checksum: str | None) -> str:
    return "no such table" if count is None else f"{count} rows, checksum {checksum[:12]}"


# --------------------------------------------------------------------------------------------
# Scratch copies


def restore_to_scratch(dsn: str, record: BackupRecord | Mapping[str, Any], scratch_db: str) -> str:
    """Restore `record` into `scratch_db` on the server of `dsn` and KEEP it; returns its DSN.

    `scratch_db` is dropped first if it exists (it must not be the live database or a system
    one) and re-created with the live database's encoding and locale. The file is checked against
    its recorded size and sha256 first (BackupUnusable when it does not match). A failed restore
    drops the scratch database again. Drop it with :func:`drop_scratch` when done.

    The copy is for comparisons (:func:`_restore_for_comparison`): tables and rows, no indexes,
    constraints or triggers, unlogged.
    """
    rec = record if isinstance(record, BackupRecord) else BackupRecord.from_dict(record)
    params = _dsn_params(dsn)
    _check_scratch_name(scratch_db, params["dbname"])
    problems = _file_problems(rec)
    if problems:
        raise BackupUnusable(f"backup {rec.path} not usable: {'; '.join(problems)}")
    with _connect(dsn) as conn:
        conn.autocommit = True
        _create_database_like(conn, scratch_db, params["dbname"])
        try:
            _restore_for_comparison(_client_tool(conn, "pg_restore"), rec, {**params, "dbname": scratch_db})
        except BaseException:
            _drop_database(conn, scratch_db)
            raise
    return _conninfo({**params, "dbname": scratch_db})


def drop_scratch(dsn: str, scratch_db: str) -> None:
    """Drop `scratch_db` (if it exists) on the server of `dsn`; never the live or a system database."""
    params = _dsn_params(dsn)
    _check_scratch_name(scratch_db, params["dbname"])
    with _connect(dsn) as conn:
        conn.autocommit = True
        _drop_database(conn, scratch_db)


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
            restored = _snapshot_fingerprints(_conninfo({**params, "dbname": incoming}), _methods_of(record))
            with _connect(_conninfo({**params, "dbname": incoming})) as restored_conn, restored_conn.cursor() as cur:
                cur.execute("SELECT coalesce(max(version), '') FROM schema_migrations")
                schema_version = cur.fetchone()[0]
            if record.fingerprints and any(not _same_content(restored.get(t), record.fingerprints.get(t))
                                           for t in set(restored) | set(record.fingerprints)):
                differing = sorted(t for t in set(restored) | set(record.fingerprints)
                                   if not _same_content(restored.get(t), record.fingerprints.get(t)))
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


def _pg_restore(pg_restore: str, record: BackupRecord, params: Mapping[str, str], *sections: str) -> None:
    """pg_restore `record` into params' database: every section, or only `sections`."""
    argv = [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--no-password", "--jobs=2",
            *[f"--section={section}" for section in sections],
            f"--dbname={_conninfo(_client_argv_params(params))}", record.path]
    done = subprocess.run(argv, env=_client_env(params), capture_output=True, text=True, timeout=DUMP_TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise BackupError(f"pg_restore into {params['dbname']} failed (exit {done.returncode}): {done.stderr.strip()}")


def _restore_for_comparison(pg_restore: str, record: BackupRecord, params: Mapping[str, str]) -> list[str]:
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
    _pg_restore(pg_restore, record, params, "pre-data")
    with _connect(_conninfo(params)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            # No autovacuum either: it would vacuum the freshly loaded copy while it is compared
            # (CPU the comparison needs) and sit in it when it is dropped.
            cur.execute("SELECT format('ALTER TABLE %I.%I SET UNLOGGED, SET (autovacuum_enabled = false)', "
                        "schemaname, tablename) FROM pg_tables "
                        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
            for (statement,) in cur.fetchall():
                cur.execute(statement)
    _pg_restore(pg_restore, record, params, "data")
    return entries


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


def _drop_database(conn: psycopg2.extensions.connection, name: str, attempts: int = 10) -> None:
    """DROP DATABASE, ending the sessions still in it (`conn` in autocommit).

    WITH (FORCE) terminates the other sessions, but refuses a non-superuser when one of them is
    an autovacuum worker (PostgreSQL 15: "must be a member of the role whose process is being
    terminated"). A plain DROP signals autovacuum workers itself and waits for them, so that is
    the fallback; a session that reconnects meanwhile makes it try again."""
    statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    with conn.cursor() as cur:
        for attempt in range(1, attempts + 1):
            try:
                cur.execute(statement + sql.SQL(" WITH (FORCE)"))
                return
            except psycopg2.errors.InsufficientPrivilege:
                try:
                    cur.execute(statement)
                    return
                except psycopg2.errors.ObjectInUse:
                    if attempt == attempts:
                        raise
                    time.sleep(0.2)


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
