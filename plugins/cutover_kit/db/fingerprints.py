"""Table fingerprints (row count + checksum) and id bounds of the rows that exist now (no Airflow).

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
(:func:`settle_id_bounds`): after the snapshot, wait for the transactions then writing to the
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
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from cutover_kit.db.errors import BackupError
from cutover_kit.db.pg_client import IDENTIFIER, connect

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
SETTLE_TIMEOUT_SECONDS = 30.0  # longest wait for the write transactions open at a snapshot
FINGERPRINT_METHODS = ("record", "text")


def table_fingerprints(dsn: str, tables: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{table: {"count": n, "checksum": hex[, "max_id": m]}}, all tables read in one consistent
    snapshot (max_id: max(id), NULL when empty, for tables with an integer id column).

    users/orders/line_items are fingerprinted over their legacy (Rails) columns only, so the
    result is comparable before and after the expand migration; other tables over all columns.
    """
    with connect(dsn) as conn:
        return fingerprints_in_transaction(conn, {table: LEGACY_COLUMNS.get(table) for table in tables})


def fingerprints_in_transaction(conn: psycopg2.extensions.connection, tables: Mapping[str, tuple[str, ...] | None],
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
            if not IDENTIFIER.match(table):
                raise BackupError(f"not a plain table name: {table!r}")
            method = (methods or {}).get(table, "record")
            if method not in FINGERPRINT_METHODS:
                raise BackupError(f"{table}: unknown fingerprint method {method!r}")
            count, total, highest = _hash_rows(cur, table, columns, method, table in with_id)
            checksum = hashlib.md5(f"{count}:{total}".encode(), usedforsecurity=False).hexdigest()  # a label, not security
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


def same_content(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal row count and checksum (max_id is a bound, not content: a settled one may be lower)."""
    return (a or {}).get("count") == (b or {}).get("count") and (a or {}).get("checksum") == (b or {}).get("checksum")


def row_snapshot(dsn: str, tables: Iterable[str]) -> dict[str, dict[str, int | None]]:
    """{table: {"count": n, "max_id": m}} now, all tables in one snapshot: the table's rows are
    exactly the `n` rows with id <= `m` (m is the settled bound, see "Pre-existing rows" above;
    None for an empty table, whose every later row is new). Counted in PostgreSQL."""
    tables = list(tables)
    with connect(dsn) as conn:
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
        settled = settle_id_bounds(conn, dsn, found)
        conn.rollback()
    return {table: {"count": settled[table]["count_to_max_id"], "max_id": settled[table]["max_id"]}
            for table in tables}


def settle_id_bounds(snapshot: psycopg2.extensions.connection, dsn: str,
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
    with connect(dsn) as now_conn:
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


def snapshot_fingerprints(dsn: str, methods: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """All-column fingerprints of every public table of `dsn`, in one snapshot (`methods`: see
    :func:`fingerprints_in_transaction`)."""
    with connect(dsn) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        fingerprints = fingerprints_in_transaction(conn, {table: None for table in all_tables(conn)}, methods)
        conn.rollback()
    return fingerprints


def all_tables(conn: psycopg2.extensions.connection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        return [row[0] for row in cur.fetchall()]
