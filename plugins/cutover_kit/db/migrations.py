"""Versioned SQL migrations for the shared database, applied with a version guard (no Airflow).

Files live in ``include/sql/migrations/<14-digit version>_<name>.up.sql`` / ``.down.sql``; every
migration must ship both. Versions are Rails-style and tracked in Rails' own ``schema_migrations``
table, so the legacy app and this runner agree on what is applied. The SQL files do their own
bookkeeping (insert / delete their version row), so a human can apply one with ``psql -1 -f``.

Guarantees of :func:`migrate_up` / :func:`migrate_down`:

* one transaction per call, with ``SET lock_timeout = '200ms'``: a migration waiting behind an
  app's lock gives up after 200 ms instead of queueing every app query behind it (retried
  ``attempts`` times, then MigrationError); an advisory lock serialises concurrent runners. The
  timeout is below PostgreSQL's ``deadlock_timeout`` (1 s) on purpose: when a migration and an
  app transaction wait for each other, the session that waited longest runs the deadlock check
  and is killed, and with 2 s that was an app's INSERT (seen in a rehearsal: Rails' order
  validation read ``users``, the migration held ``orders`` and wanted ``users``; the user got a
  500). At 200 ms the migration always gives up first, and only the migration retries;
* a version guard: the database must be at ``expected_current``, otherwise nothing is changed and
  MigrationError says "database is at version X, expected Y before applying Z";
* idempotent on retry: asking for the state the database is already in is a no-op
  (``report.noop``), so a retried Airflow task whose first try committed does not fail;
* a post-condition: after the files ran, the version must be exactly the target, or everything is
  rolled back.

:func:`backfill` fills the expand's new columns for existing rows in short id-range batches
(each its own transaction), safe to re-run and safe while both apps write: the triggers keep rows
written meanwhile in step, and every batch only fills columns that are still NULL.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from cutover_kit.db.schema_versions import BASE_VERSION, EXPAND_VERSION  # noqa: F401 - callers name them here
from cutover_kit.paths import REPO_ROOT

MIGRATIONS_DIR = REPO_ROOT / "include" / "sql" / "migrations"
LOCK_TIMEOUT = "200ms"  # < deadlock_timeout (1 s): a deadlock with an app always costs the migration, never the app
STATEMENT_TIMEOUT = "60s"
# Any constant works; it only has to be the same for every runner.
ADVISORY_LOCK_KEY = 726_118_402_001
_FILE_PATTERN = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.(?P<direction>up|down)\.sql$")
# Transient: another session held a lock too long, or a deadlock was broken by PostgreSQL.
_RETRYABLE = (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected)


class MigrationError(RuntimeError):
    """A migration or backfill was refused or failed; the message says which and why."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    up_path: Path
    down_path: Path


@dataclass(frozen=True)
class MigrationReport:
    direction: str  # "up" or "down"
    from_version: str
    to_version: str
    applied: list[str]  # versions run, in order (empty when noop)
    seconds: float
    noop: bool = False  # the database was already where it was asked to go
    attempts: int = 1  # > 1 when a lock timeout made the runner retry

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BackfillReport:
    rows: int  # rows updated by this run
    batches: int  # UPDATE statements run (one short transaction each)
    seconds: float
    max_batch_seconds: float  # the longest any batch held its row locks
    remaining: int = 0  # rows still missing a new-shape value (0 = complete)
    tables: dict[str, dict[str, float]] = field(default_factory=dict)  # table -> {"rows", "seconds"}

    @property
    def complete(self) -> bool:
        return self.remaining == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}


# --------------------------------------------------------------------------------------------
# Discovery and version


def list_migrations(dir: Path | str = MIGRATIONS_DIR) -> list[Migration]:  # noqa: A002 - public contract name
    """Migrations in `dir`, oldest first. Raises MigrationError on a half-present pair,
    a misnamed .sql file or a duplicated version."""
    directory = Path(dir)
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files must be named <14-digit version>_<name>.up.sql/.down.sql")
        entry = found.setdefault(match["version"], {"name": match["name"]})
        if entry["name"] != match["name"]:
            raise MigrationError(f"version {match['version']} is used by two migrations: {entry['name']}, {match['name']}")
        entry[match["direction"]] = path
    migrations = []
    for version, entry in sorted(found.items()):
        missing = [direction for direction in ("up", "down") if direction not in entry]
        if missing:
            raise MigrationError(f"migration {version}_{entry['name']} has no .{missing[0]}.sql: every step must be reversible")
        migrations.append(Migration(version, entry["name"], entry["up"], entry["down"]))
    return migrations


def current_version(conn: psycopg2.extensions.connection) -> str:
    """Highest version in schema_migrations ("" when the table is empty)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not cur.fetchone()[0]:
            raise MigrationError("the database has no schema_migrations table: it is not the Rails-managed schema")
        cur.execute("SELECT coalesce(max(version), '') FROM schema_migrations")
        return cur.fetchone()[0]


def _applied_versions(cur: psycopg2.extensions.cursor) -> set[str]:
    cur.execute("SELECT version FROM schema_migrations")
    return {row[0] for row in cur.fetchall()}


# --------------------------------------------------------------------------------------------
# Up and down


def migrate_up(dsn: str, target_version: str, expected_current: str, *, migrations_dir: Path | str = MIGRATIONS_DIR,
               attempts: int = 10) -> MigrationReport:
    """Apply every migration after `expected_current` up to `target_version`, in one transaction."""
    migrations = list_migrations(migrations_dir)
    _require_known(migrations, target_version)

    def step(cur: psycopg2.extensions.cursor, current: str) -> tuple[list[str], bool]:
        if current == target_version:
            return [], True
        if current != expected_current:
            raise MigrationError(f"database is at version {current or '(none)'}, expected {expected_current} "
                                 f"before applying {target_version}; nothing was changed")
        pending = [m for m in migrations if current < m.version <= target_version]
        if not pending:
            raise MigrationError(f"database is at version {current}, past {target_version}: use migrate_down")
        for migration in pending:
            _run_file(cur, migration, "up")
        return [m.version for m in pending], False

    return _in_transaction(dsn, "up", target_version, step, attempts)


def migrate_down(dsn: str, version: str, expected_current: str, *, migrations_dir: Path | str = MIGRATIONS_DIR,
                 attempts: int = 10) -> MigrationReport:
    """Revert migration `version` (and any applied after it, newest first), in one transaction."""
    migrations = list_migrations(migrations_dir)
    _require_known(migrations, version)
    known = {m.version: m for m in migrations}

    def step(cur: psycopg2.extensions.cursor, current: str) -> tuple[list[str], bool]:
        applied = _applied_versions(cur)
        if version not in applied and current < version:
            return [], True
        if current != expected_current:
            raise MigrationError(f"database is at version {current or '(none)'}, expected {expected_current} "
                                 f"before reverting {version}; nothing was changed")
        to_revert = sorted((v for v in applied if v >= version), reverse=True)
        unknown = [v for v in to_revert if v not in known]
        if unknown:
            raise MigrationError(f"cannot revert {version}: versions {unknown} are applied but have no migration "
                                 f"files here; nothing was changed")
        for applied_version in to_revert:
            _run_file(cur, known[applied_version], "down")
        return to_revert, False

    return _in_transaction(dsn, "down", version, step, attempts)


def _require_known(migrations: list[Migration], version: str) -> None:
    if version not in {m.version for m in migrations}:
        known = ", ".join(m.version for m in migrations) or "none"
        raise MigrationError(f"unknown migration version {version!r} (known: {known})")


def _run_file(cur: psycopg2.extensions.cursor, migration: Migration, direction: str) -> None:
    path = migration.up_path if direction == "up" else migration.down_path
    try:
        cur.execute(path.read_text())
    except psycopg2.Error as error:
        verb = "applying" if direction == "up" else "reverting"
        raise _Failed(f"{verb} {migration.version}_{migration.name} failed, nothing was changed: "
                      f"{(error.pgerror or str(error)).strip()}", error) from error
    applied = _applied_versions(cur)
    if (migration.version in applied) != (direction == "up"):
        raise MigrationError(f"{path.name} ran but did not {'insert' if direction == 'up' else 'delete'} its "
                             f"schema_migrations row; rolled back")


class _Failed(MigrationError):
    def __init__(self, message: str, cause: psycopg2.Error) -> None:
        super().__init__(message)
        self.cause = cause


def _in_transaction(dsn: str, direction: str, version: str,
                    step: Callable[[psycopg2.extensions.cursor, str], tuple[list[str], bool]],
                    attempts: int) -> MigrationReport:
    started = time.monotonic()
    for attempt in range(1, max(1, attempts) + 1):
        conn = _connect(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
                cur.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
                before = current_version(conn)
                applied, noop = step(cur, before)
                after = current_version(conn)
            if noop:
                conn.rollback()
            else:
                conn.commit()
            return MigrationReport(direction=direction, from_version=before, to_version=after, applied=applied,
                                   seconds=round(time.monotonic() - started, 3), noop=noop, attempts=attempt)
        except (_Failed, psycopg2.Error) as error:
            conn.rollback()
            cause = error.cause if isinstance(error, _Failed) else error
            if isinstance(cause, _RETRYABLE) and attempt < attempts:
                # Short, growing, jittered: two runners or a steady stream of app writes do not
                # meet again in lockstep. The whole budget of the default 10 attempts is ~7 s.
                time.sleep(min(1.0, 0.1 * attempt) * random.uniform(0.5, 1.5))
                continue
            if isinstance(cause, psycopg2.errors.LockNotAvailable):
                raise MigrationError(f"migrate {direction} {version}: a table stayed locked by other sessions for "
                                     f"more than {LOCK_TIMEOUT} on each of {attempts} attempts; nothing was changed") from error
            if isinstance(error, _Failed):
                raise MigrationError(str(error)) from cause
            raise MigrationError(f"migrate {direction} {version} failed, nothing was changed: "
                                 f"{(error.pgerror or str(error)).strip()}") from error
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
    raise AssertionError("unreachable")


def _connect(dsn: str) -> psycopg2.extensions.connection:
    try:
        return psycopg2.connect(dsn, connect_timeout=5, application_name="cutover-migrations")
    except psycopg2.Error as error:
        raise MigrationError(f"cannot connect to the database: {str(error).strip()}") from error


# --------------------------------------------------------------------------------------------
# Backfill

# table -> (SET clause filling only what is NULL, WHERE clause selecting rows that still need it).
# The row triggers see the new column change and recompute the legacy one from it, which gives
# back the same value (cents -> amount -> cents is exact at 2 decimals).
BACKFILL_STEPS: dict[str, tuple[str, str]] = {
    "orders": ("amount = coalesce(amount, round(amount_cents / 100.0, 2)), "
               "status_v2 = coalesce(status_v2, status::order_status), "
               "currency = coalesce(currency, 'USD')",
               "amount IS NULL OR status_v2 IS NULL OR currency IS NULL"),
    "line_items": ("unit_price = coalesce(unit_price, round(unit_price_cents / 100.0, 2))",
                   "unit_price IS NULL"),
    "users": ("email_normalized = coalesce(email_normalized, lower(btrim(email)))",
              "email_normalized IS NULL"),
}


def backfill(dsn: str, batch_size: int = 5000, max_batches: int | None = None, *, attempts: int = 10) -> BackfillReport:
    """Fill the expand's new columns of existing rows, `batch_size` ids per short transaction.

    Stops after `max_batches` batches if given (re-run to continue; ``report.remaining`` says how
    many rows still wait). Requires the expand migration.
    """
    if batch_size < 1:
        raise MigrationError(f"batch_size must be >= 1, got {batch_size}")
    started = time.monotonic()
    rows = batches = 0
    longest = 0.0
    per_table: dict[str, dict[str, float]] = {}
    with _autocommit(dsn) as conn, conn.cursor() as cur:
        version = current_version(conn)
        if version < EXPAND_VERSION:
            raise MigrationError(f"backfill needs schema {EXPAND_VERSION}, database is at version {version}")
        cur.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        cur.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        for table, (assignments, needed) in BACKFILL_STEPS.items():
            table_started, table_rows = time.monotonic(), 0
            cur.execute(f"SELECT min(id), max(id) FROM {table}")
            low, high = cur.fetchone()
            start = low
            while low is not None and start <= high:
                if max_batches is not None and batches >= max_batches:
                    break
                batch_started = time.monotonic()
                updated = _batch(cur, f"UPDATE {table} SET {assignments} WHERE id >= %s AND id < %s AND ({needed})",
                                 (start, start + batch_size), attempts)
                longest = max(longest, time.monotonic() - batch_started)
                table_rows += updated
                batches += 1
                start += batch_size
            rows += table_rows
            per_table[table] = {"rows": table_rows, "seconds": round(time.monotonic() - table_started, 3)}
        remaining = 0
        for table, (_assignments, needed) in BACKFILL_STEPS.items():
            cur.execute(f"SELECT count(*) FROM {table} WHERE {needed}")
            remaining += cur.fetchone()[0]
    return BackfillReport(rows=rows, batches=batches, seconds=round(time.monotonic() - started, 3),
                          max_batch_seconds=round(longest, 4), remaining=remaining, tables=per_table)


def vacuum_analyze(dsn: str, tables: Iterable[str] = tuple(BACKFILL_STEPS)) -> float:
    """VACUUM (ANALYZE) `tables` after a backfill rewrote every row; returns the seconds it took.

    Why: each backfilled row left a dead version behind and a page the visibility map no longer
    calls all-visible, and the new columns have no planner statistics yet. Stage 2's validation
    comes next: unvacuumed, its scans read the dead versions too, its index-only scan of each
    primary key (the uniqueness check) visits the heap for every row, and the planner guesses.
    A plain VACUUM takes no lock the apps' reads and writes wait for. Idempotent.
    """
    started = time.monotonic()
    with _autocommit(dsn) as conn, conn.cursor() as cur:  # VACUUM cannot run in a transaction
        for table in tables:
            if table not in BACKFILL_STEPS:
                raise MigrationError(f"not a backfilled table: {table!r}")
            cur.execute(f"VACUUM (ANALYZE) {table}")
    return round(time.monotonic() - started, 3)


def _batch(cur: psycopg2.extensions.cursor, sql: str, params: tuple[int, int], attempts: int) -> int:
    for attempt in range(1, attempts + 1):
        try:
            cur.execute(sql, params)
            return cur.rowcount
        except _RETRYABLE as error:
            if attempt == attempts:
                raise MigrationError(f"backfill batch ids [{params[0]}, {params[1]}) kept failing "
                                     f"({type(error).__name__}) after {attempts} attempts: {str(error).strip()}") from error
            time.sleep(0.2 * attempt)
        except psycopg2.Error as error:
            raise MigrationError(f"backfill batch ids [{params[0]}, {params[1]}) failed "
                                 f"(earlier batches stay committed; re-run to continue): {str(error).strip()}") from error
    raise AssertionError("unreachable")


@contextmanager
def _autocommit(dsn: str) -> Iterator[psycopg2.extensions.connection]:
    conn = _connect(dsn)
    conn.autocommit = True  # one transaction per statement: no batch holds locks past its own UPDATE
    try:
        yield conn
    finally:
        conn.close()
