"""Deterministic, set-based test data for the shared database: users, orders and line_items.

``generate(dsn, orders=200_000)`` fills the legacy tables with ``orders`` orders, ``users`` users
(default ``orders // 5``) and on average three line items per order. Every value comes from
``hashint8extended(row number, seed)`` inside PostgreSQL (``generate_series``, no per-row Python),
so the same arguments give byte-identical rows, checksums included, on every run.

What the data is meant to exercise:

* emails in mixed case (``Anna.Smith12@Example.com``, ``ANNA.SMITH13@EXAMPLE.COM``) and ~2 % with a
  trailing blank, so ``lower(btrim(email))`` matters; the numeric suffix (the user id) keeps the
  normalised form unique, as a real table cleaned up before the expand would be;
* every order status of the legacy check constraint, skewed like a shop (most paid/shipped);
* sparse ``line_items`` ids (``(order_id - 1) * 5 + n``), the way deletions leave a real table, so
  id-range batching meets gaps.

Rows get explicit ids and the sequences are moved past them, so application inserts never collide.
The tables must be empty unless ``replace=True`` (then they are truncated first): a generator that
silently appended to, or wiped, a database holding real writes would defeat the point of the
zero-data-loss checks.

CLI: ``python -m sandbox.datagen --orders 200000 [--users N] [--seed 42] [--replace] [--dsn DSN]``
(without ``--dsn`` it targets the running sandbox).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from sandbox.config import SandboxConfig

TABLES = ("users", "orders", "line_items")
MAX_LINE_ITEMS_PER_ORDER = 5  # 1..5 per order, 3 on average
MAX_ROWS = 50_000_000

FIRST_NAMES = ("Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
               "Maya", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Will", "Zoe")
LAST_NAMES = ("Smith", "Garcia", "Müller", "Nguyen", "O'Brien", "Rossi", "Kowalski", "Dubois", "Tanaka", "Silva",
              "Johansson", "Okafor", "Novak", "Fischer", "Martin", "Costa")
DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "shop.test", "corp.example.com")
# Weighted like a shop: 8 slots, so paid and shipped dominate and every status appears.
STATUS_SLOTS = ("paid", "paid", "shipped", "shipped", "shipped", "pending", "cancelled", "refunded")


class DatagenError(RuntimeError):
    """The data could not be generated; the message says why (nothing was changed)."""


@dataclass(frozen=True)
class DatagenReport:
    users: int
    orders: int
    line_items: int
    seconds: float


def _sql_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def _hash(expr: str, seed: int, stream: int) -> str:
    """Non-negative pseudo-random bigint for row `expr`; one independent stream per column."""
    return f"(hashint8extended(({expr})::bigint, {seed * 64 + stream}) & 9223372036854775807)"


def build_statements(orders: int, users: int, seed: int) -> list[str]:
    """The INSERT ... SELECT generate_series statements, in order (exposed for review/tests)."""
    h = lambda expr, stream: _hash(expr, seed, stream)  # noqa: E731 - local shorthand
    first, last, domain = _sql_array(FIRST_NAMES), _sql_array(LAST_NAMES), _sql_array(DOMAINS)
    # Users over two years, orders over the two years after the first user; times are exact
    # functions of the id, so they are deterministic too.
    users_sql = f"""
        INSERT INTO users (id, email, name, created_at, updated_at)
        SELECT i,
               CASE WHEN variant < 4 THEN lower(f || '.' || l) || i || '@' || d
                    WHEN variant < 7 THEN f || '.' || l || i || '@' || d
                    WHEN variant = 7 THEN upper(f || '.' || l || i || '@' || d)
                    WHEN variant = 8 THEN lower(f) || '_' || lower(l) || i || '@' || initcap(d)
                    ELSE f || i || '@' || upper(d) END
               || CASE WHEN blank = 0 THEN ' ' ELSE '' END,
               f || ' ' || l,
               ts, ts + (touch * interval '1 hour')
        FROM (SELECT i,
                     ({first})[1 + {h('i', 1)} % {len(FIRST_NAMES)}] AS f,
                     ({last})[1 + {h('i', 2)} % {len(LAST_NAMES)}] AS l,
                     ({domain})[1 + {h('i', 3)} % {len(DOMAINS)}] AS d,
                     {h('i', 4)} % 10 AS variant,
                     {h('i', 5)} % 50 AS blank,
                     {h('i', 6)} % 48 AS touch,
                     timestamp '2023-01-01 00:00:00' + (i * (63072000.0::float8 / {users})) * interval '1 second' AS ts
              FROM generate_series(1, {users}) AS i) AS u
    """
    order_ts = f"timestamp '2024-01-01 00:00:00' + (i * (63072000.0::float8 / {max(orders, 1)})) * interval '1 second'"
    orders_sql = f"""
        INSERT INTO orders (id, user_id, amount_cents, status, created_at, updated_at)
        SELECT i,
               1 + {h('i', 10)} % {users},
               -- 1.00 .. 500.97, skewed towards small baskets
               100 + ({h('i', 11)} % 20000) * (1 + {h('i', 12)} % 25) / 10,
               ({_sql_array(STATUS_SLOTS)})[1 + {h('i', 13)} % {len(STATUS_SLOTS)}],
               ts, ts + ({h('i', 14)} % 72) * interval '1 hour'
        FROM (SELECT i, {order_ts} AS ts FROM generate_series(1, {orders}) AS i) AS o
    """
    # Line items k = (order - 1) * 5 + n for n <= the order's item count: one flat series filtered
    # by a hash is ~3x faster than a LATERAL generate_series per order, and leaves id gaps.
    per = MAX_LINE_ITEMS_PER_ORDER
    line_items_sql = f"""
        INSERT INTO line_items (id, order_id, sku, quantity, unit_price_cents, created_at, updated_at)
        SELECT k, i,
               'SKU-' || lpad(({h('k', 21)} % 20000)::text, 5, '0'),
               1 + {h('k', 22)} % 4,
               50 + {h('k', 23)} % 25000,
               ts, ts
        FROM (SELECT k, i, {order_ts} AS ts
              FROM (SELECT k, (k - 1) / {per} + 1 AS i, (k - 1) % {per} + 1 AS n
                    FROM generate_series(1, {orders * per}::bigint) AS k) AS candidates
              WHERE n <= 1 + {h('i', 20)} % {per}) AS items
    """
    sequences = [f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest((SELECT max(id) FROM {table}), 1))"
                 for table in TABLES]
    return [users_sql, orders_sql, line_items_sql, *sequences]


@contextmanager
def _without_indexes(cur: psycopg2.extensions.cursor) -> Iterator[None]:
    """Drop the tables' keys, foreign keys and indexes for the load, then rebuild them as they were.

    Bulk loading into indexed, foreign-keyed tables costs a per-row FK lookup and random index
    inserts (about 4x slower for 1M orders); rebuilding afterwards sorts once and validates each
    foreign key with one join. All inside the caller's transaction: on any error nothing changed,
    and the rebuilt constraints validate every generated row.
    """
    tables = "ARRAY[" + ", ".join(f"'{table}'::regclass" for table in TABLES) + "]"
    # Foreign keys touching the tables (either side), then the tables' own keys and indexes.
    cur.execute(f"""SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                    WHERE contype = 'f' AND (conrelid = ANY({tables}) OR confrelid = ANY({tables})) ORDER BY oid""")
    foreign_keys = cur.fetchall()
    cur.execute(f"""SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                    WHERE contype IN ('p', 'u') AND conrelid = ANY({tables}) ORDER BY oid""")
    keys = cur.fetchall()
    cur.execute(f"""SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
                    WHERE i.indrelid = ANY({tables})
                      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                    ORDER BY i.indexrelid""")
    indexes = cur.fetchall()
    for table, name, _definition in foreign_keys + keys:
        cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        cur.execute(f"DROP INDEX {name}")
    yield
    for table, name, definition in keys + foreign_keys:
        cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for _name, definition in indexes:
        cur.execute(definition)


def generate(dsn: str, orders: int, users: int | None = None, seed: int = 42, *, replace: bool = False) -> DatagenReport:
    """Fill users/orders/line_items deterministically; one transaction, all or nothing.

    ``users`` defaults to ``orders // 5`` (at least 1). Refuses (DatagenError, nothing changed)
    when the tables already hold rows, unless ``replace=True``.
    """
    users = max(1, orders // 5) if users is None else users
    for name, value in (("orders", orders), ("users", users), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise DatagenError(f"{name} must be an integer, got {value!r}")
    if not 0 <= orders <= MAX_ROWS or not 1 <= users <= MAX_ROWS:
        raise DatagenError(f"orders must be in [0, {MAX_ROWS}] and users in [1, {MAX_ROWS}]; got {orders}, {users}")
    if not 0 <= seed < 2**40:
        raise DatagenError(f"seed must be in [0, 2**40), got {seed}")
    started = time.monotonic()
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '5s'")
            existing = {}
            for table in TABLES:
                cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
                existing[table] = cur.fetchone()[0]
            if any(existing.values()) and not replace:
                filled = ", ".join(table for table, has_rows in existing.items() if has_rows)
                raise DatagenError(f"refusing to generate data: {filled} already hold rows "
                                   f"(pass replace=True / --replace to truncate them first)")
            # Also when empty: a table truncated in this transaction gets a new file, which
            # PostgreSQL (wal_level=minimal) then fills without writing WAL.
            cur.execute("TRUNCATE line_items, orders, users RESTART IDENTITY")
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")  # index rebuilds sort in memory
            statements = build_statements(orders, users, seed)
            counts = []
            with _without_indexes(cur):
                for statement in statements[:len(TABLES)]:
                    cur.execute(statement)
                    counts.append(cur.rowcount)
            for statement in statements[len(TABLES):]:  # sequences: max(id) is an index lookup again
                cur.execute(statement)
            # Fresh statistics: the backfill and the checks plan id-range scans on these tables.
            cur.execute("ANALYZE users, orders, line_items")
    except psycopg2.Error as error:
        raise DatagenError(f"data generation failed, nothing was changed: {str(error).strip()}") from error
    finally:
        conn.close()
    return DatagenReport(users=counts[0], orders=counts[1], line_items=counts[2],
                         seconds=round(time.monotonic() - started, 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.datagen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, required=True)
    parser.add_argument("--users", type=int, default=None, help="default: orders // 5")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--replace", action="store_true", help="truncate users/orders/line_items first")
    parser.add_argument("--dsn", help="libpq DSN; default: the running sandbox's database")
    args = parser.parse_args(argv)
    try:
        dsn = args.dsn
        if dsn is None:
            dsn = SandboxConfig.from_env().app_dsn()
        report = generate(dsn, args.orders, args.users, args.seed, replace=args.replace)
    except Exception as error:  # noqa: BLE001 - CLI: one line, exit 1
        print(f"datagen: error: {error}", file=sys.stderr)
        return 1
    print(f"datagen: {report.users} users, {report.orders} orders, {report.line_items} line items "
          f"in {report.seconds:.2f}s (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
