"""Stage 2 database preparation against a real PostgreSQL: expand/contract migration, triggers,
backfill, backups and the last-resort restore.

One PostgreSQL per module (conftest `postgres_only`); every test works on its own clone of the
pristine `cutover` database, so tests never see each other's writes.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
import requests

from cutover_kit.db import backup, fingerprints, migrations, restore, verify
from cutover_kit.db.errors import BackupError
from cutover_kit.db.migrations import BASE_VERSION, EXPAND_VERSION, MigrationError
from sandbox import datagen
from sandbox.app_writes import AppSession
from sandbox.launcher import Sandbox
from sandbox.node import project_node

pytestmark = pytest.mark.timeout(120)
LEGACY_TABLES = ("users", "orders", "line_items")
_names = itertools.count()


# ------------------------------------------------------------------------------- helpers


@pytest.fixture
def db(postgres_only: Sandbox) -> Iterator[str]:
    """DSN of a fresh clone of the pristine database (legacy schema, 2,000 orders)."""
    name = f"t{next(_names)}_{int(time.time() * 1000) % 10**8}"
    base = postgres_only.dsn()
    maintenance = psycopg2.extensions.make_dsn(base, dbname="postgres")  # the template must have no sessions
    admin = psycopg2.connect(maintenance)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} TEMPLATE cutover")
    admin.close()
    dsn = psycopg2.extensions.make_dsn(base, dbname=name)
    yield dsn
    admin = psycopg2.connect(maintenance)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        # restore_database leaves the pre-restore copy behind by design; tests clean it up.
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{name}_before_restore_%",))
        for (kept,) in cur.fetchall():
            cur.execute(f'DROP DATABASE "{kept}" WITH (FORCE)')
    admin.close()


def query(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def schema_of(dsn: str) -> dict[str, Any]:
    """Everything a migration may touch, from information_schema and the catalogs."""
    return {
        "columns": query(dsn, """SELECT table_name, column_name, data_type, character_maximum_length, numeric_precision,
                                        numeric_scale, is_nullable, column_default
                                 FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"""),
        "indexes": query(dsn, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"),
        "triggers": query(dsn, """SELECT event_object_table, trigger_name, event_manipulation, action_timing
                                  FROM information_schema.triggers ORDER BY 1, 2, 3"""),
        "routines": query(dsn, "SELECT routine_name FROM information_schema.routines WHERE routine_schema = 'public' ORDER BY 1"),
        "types": query(dsn, """SELECT t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
                               ORDER BY 1, e.enumsortorder"""),
        "versions": query(dsn, "SELECT version FROM schema_migrations ORDER BY 1"),
    }


def expand(dsn: str) -> None:
    report = migrations.migrate_up(dsn, EXPAND_VERSION, expected_current=BASE_VERSION)
    assert (report.from_version, report.to_version, report.applied) == (BASE_VERSION, EXPAND_VERSION, [EXPAND_VERSION])


def contract_back(dsn: str) -> None:
    report = migrations.migrate_down(dsn, EXPAND_VERSION, expected_current=EXPAND_VERSION)
    assert (report.to_version, report.applied) == (BASE_VERSION, [EXPAND_VERSION])


def order_row(dsn: str, order_id: int) -> dict[str, Any]:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM orders WHERE id = %s", (order_id,))
        row = dict(zip([c.name for c in cur.description], cur.fetchone()))
    conn.close()
    return row


def inconsistent_rows(dsn: str) -> list[tuple]:
    """Rows whose two shapes disagree (NULL new columns count as disagreeing)."""
    return query(dsn, """
        SELECT 'orders', count(*) FROM orders
         WHERE amount IS DISTINCT FROM amount_cents / 100.0 OR status_v2::text IS DISTINCT FROM status OR currency IS NULL
        UNION ALL SELECT 'line_items', count(*) FROM line_items WHERE unit_price IS DISTINCT FROM unit_price_cents / 100.0
        UNION ALL SELECT 'users', count(*) FROM users WHERE email_normalized IS DISTINCT FROM lower(btrim(email))""")


# Green forwards to Rails unless its flags say otherwise; the green started here reads no flag
# file that enables anything, so requests force green's own code the way the smoke checks do.
OWN_CODE = {"X-Cutover-Serve": "typescript"}
TYPESCRIPT_MAIN = Path(__file__).resolve().parents[2] / "sandbox" / "apps" / "typescript" / "dist" / "src" / "main.js"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GreenProcess:
    """The TypeScript app (green) on its own port against one test database. Its Redis is a port
    nobody listens on: the confirmation job is not under test here, and a Redis outage must not
    fail green's reads, writes or readiness."""

    def __init__(self, dsn: str, tmp_path: Path) -> None:
        if not TYPESCRIPT_MAIN.is_file():
            pytest.fail(f"{TYPESCRIPT_MAIN} missing: run `make bootstrap` (it builds green)")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        flags = tmp_path / "flagd.json"
        flags.write_text('{"flags": {}}')
        env = dict(os.environ, SANDBOX_APP_DSN=dsn, SANDBOX_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                   SANDBOX_FLAG_BACKEND="file", SANDBOX_FLAGS_FILE=str(flags))
        self.log = tmp_path / "green.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([str(project_node()), str(TYPESCRIPT_MAIN), "--color", "green", "--host", "127.0.0.1",
                                          "--port", str(port), "--rails-url", f"http://127.0.0.1:{free_port()}"],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while not self._answers():
            assert self.proc.poll() is None, f"green exited {self.proc.returncode}: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"green did not listen within 60 s: {self.log.read_text()[-2000:]}"
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------- migrations


def test_migration_files_are_found_in_pairs(tmp_path: Path) -> None:
    found = migrations.list_migrations()
    assert [m.version for m in found] == [EXPAND_VERSION]
    assert found[0].up_path.name == "20261126000001_expand_typescript_shape.up.sql"
    assert found[0].down_path.exists()
    (tmp_path / "20300101000000_half.up.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="no .down.sql"):
        migrations.list_migrations(tmp_path)


def test_up_down_round_trip_leaves_the_legacy_schema_exactly(db: str) -> None:
    before = schema_of(db)
    expand(db)
    expanded = schema_of(db)
    new_columns = {(t, c) for t, c, *_ in expanded["columns"]} - {(t, c) for t, c, *_ in before["columns"]}
    assert new_columns == {("orders", "amount"), ("orders", "currency"), ("orders", "status_v2"),
                           ("users", "email_normalized"), ("line_items", "unit_price")}
    columns = {(t, c): rest for t, c, *rest in expanded["columns"]}
    assert columns[("orders", "amount")][:4] == ["numeric", None, 12, 2]
    assert columns[("orders", "currency")][0] == "character" and "'USD'" in columns[("orders", "currency")][5]
    assert all(columns[key][4] == "YES" for key in new_columns), "new columns stay NULLable until the contract"
    assert [label for name, label in expanded["types"] if name == "order_status"] == [
        "pending", "paid", "shipped", "cancelled", "refunded"]
    assert ("index_users_on_email_normalized",
            "CREATE UNIQUE INDEX index_users_on_email_normalized ON public.users USING btree (email_normalized)") \
        in expanded["indexes"]
    assert {(table, timing) for table, _, _, timing in expanded["triggers"]} == {
        ("orders", "BEFORE"), ("line_items", "BEFORE"), ("users", "BEFORE")}
    conn = psycopg2.connect(db)
    assert migrations.current_version(conn) == EXPAND_VERSION
    conn.close()

    contract_back(db)
    assert schema_of(db) == before
    expand(db)  # and forward again
    assert schema_of(db) == expanded


def test_wrong_expected_version_is_refused_and_changes_nothing(db: str) -> None:
    before = schema_of(db)
    with pytest.raises(MigrationError, match=r"^database is at version 20240101000000, expected 20991231000000 "
                                             r"before applying 20261126000001"):
        migrations.migrate_up(db, EXPAND_VERSION, expected_current="20991231000000")
    assert schema_of(db) == before
    with pytest.raises(MigrationError, match="unknown migration version"):
        migrations.migrate_up(db, "20270101000000", expected_current=BASE_VERSION)
    assert schema_of(db) == before

    expand(db)
    expanded = schema_of(db)
    with pytest.raises(MigrationError, match=r"database is at version 20261126000001, expected 20240101000000 "
                                             r"before reverting 20261126000001"):
        migrations.migrate_down(db, EXPAND_VERSION, expected_current=BASE_VERSION)
    assert schema_of(db) == expanded
    # A retried task whose first try committed finds the database where it wanted it: a no-op.
    again = migrations.migrate_up(db, EXPAND_VERSION, expected_current=BASE_VERSION)
    assert again.noop and again.applied == [] and schema_of(db) == expanded


def test_a_failing_migration_rolls_back_every_statement(db: str, tmp_path: Path) -> None:
    for suffix in ("up", "down"):
        shutil.copy(migrations.MIGRATIONS_DIR / f"20261126000001_expand_typescript_shape.{suffix}.sql", tmp_path)
    (tmp_path / "20261126000002_broken.up.sql").write_text(
        "ALTER TABLE orders ADD COLUMN half_done integer;\n"
        "INSERT INTO schema_migrations (version) VALUES ('20261126000002');\n"
        "SELECT 1 / 0;\n")
    (tmp_path / "20261126000002_broken.down.sql").write_text("SELECT 1;")
    before = schema_of(db)
    with pytest.raises(MigrationError, match="applying 20261126000002_broken failed, nothing was changed: .*division by zero"):
        migrations.migrate_up(db, "20261126000002", expected_current=BASE_VERSION, migrations_dir=tmp_path)
    assert schema_of(db) == before, "the expand that ran first in the same call must be rolled back too"


def test_duplicate_normalised_emails_stop_the_expand_before_anything_changes(db: str) -> None:
    query(db, "INSERT INTO users (email, created_at, updated_at) VALUES ('Dup@Example.com', now(), now()),"
              " (' dup@example.COM', now(), now())")
    before = schema_of(db)
    with pytest.raises(MigrationError, match="2 rows normalise to dup@example.com"):
        expand(db)
    assert schema_of(db) == before


def test_a_lock_held_by_an_app_makes_the_migration_give_up_after_the_lock_timeout(db: str) -> None:
    holder = psycopg2.connect(db)
    with holder.cursor() as cur:
        cur.execute("LOCK TABLE orders IN ACCESS SHARE MODE")  # like a long-running read, still open
    before = schema_of(db)
    started = time.monotonic()
    with pytest.raises(MigrationError, match=r"stayed locked by other sessions for more than 200ms"):
        migrations.migrate_up(db, EXPAND_VERSION, expected_current=BASE_VERSION, attempts=1)
    assert 0.15 < time.monotonic() - started < 4
    holder.rollback()
    holder.close()
    assert schema_of(db) == before


def test_a_deadlock_between_the_migration_and_an_app_write_costs_the_migration_never_the_write(db: str) -> None:
    """Seen in a rehearsal with a 2 s lock timeout: Rails' order transaction read ``users`` (its
    belongs_to validation) and then waited for ``orders``, which the migration held while it waited
    for ``users``. PostgreSQL's deadlock check runs in the session that waited longest, so the
    app's INSERT was killed and a user got a 500. With the lock timeout under deadlock_timeout the
    migration gives up first, the INSERT commits, and the migration succeeds on a later attempt."""
    slow_reader = psycopg2.connect(db)  # holds line_items a little, so the migration waits while holding orders
    app = psycopg2.connect(db)
    try:
        with slow_reader.cursor() as cur:
            cur.execute("SELECT count(*) FROM line_items")
        with app.cursor() as cur:
            cur.execute("SELECT 1 FROM users WHERE id = 1")  # the validation's read, inside the order's transaction
        outcome: dict[str, Any] = {}

        def migrate() -> None:
            try:
                outcome["report"] = migrations.migrate_up(db, EXPAND_VERSION, expected_current=BASE_VERSION)
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = error

        runner = threading.Thread(target=migrate)
        runner.start()
        time.sleep(0.1)  # the migration has orders and waits for line_items
        release = threading.Timer(0.6, slow_reader.rollback)
        release.start()
        with app.cursor() as cur:  # waits for orders first: the longest waiter if a cycle forms
            cur.execute("INSERT INTO orders (user_id, amount_cents, status, created_at, updated_at)"
                        " VALUES (1, 4200, 'pending', now(), now()) RETURNING id")
            (order_id,) = cur.fetchone()
        app.commit()
        runner.join(30)
        release.join()
    finally:
        app.close()
        slow_reader.close()
    assert "error" not in outcome, outcome
    assert outcome["report"].to_version == EXPAND_VERSION and outcome["report"].attempts > 1, outcome
    assert order_row(db, order_id)["amount_cents"] == 4200


# ------------------------------------------------------------------------------- triggers


def test_triggers_keep_both_shapes_in_step_whichever_app_writes(db: str) -> None:
    expand(db)
    # Blue (Rails) inserts and updates the legacy columns only.
    (blue_id,) = query(db, "INSERT INTO orders (user_id, amount_cents, status, created_at, updated_at)"
                           " VALUES (1, 1999, 'paid', now(), now()) RETURNING id")[0]
    row = order_row(db, blue_id)
    assert (str(row["amount"]), row["status_v2"], row["currency"]) == ("19.99", "paid", "USD")
    # Green inserts the new columns only: amount_cents and status come from the trigger.
    (green_id,) = query(db, "INSERT INTO orders (user_id, amount, currency, status_v2, created_at, updated_at)"
                            " VALUES (2, 12.345, 'EUR', 'shipped', now(), now()) RETURNING id")[0]
    row = order_row(db, green_id)
    assert (row["amount_cents"], row["status"], str(row["amount"])) == (1235, "shipped", "12.35")

    # Updates: the side that changed wins.
    query(db, "UPDATE orders SET amount_cents = 2500, status = 'refunded' WHERE id = %s", (green_id,))  # blue
    row = order_row(db, green_id)
    assert (str(row["amount"]), row["status_v2"]) == ("25.00", "refunded")
    query(db, "UPDATE orders SET amount = 7.10, status_v2 = 'cancelled' WHERE id = %s", (blue_id,))  # green
    row = order_row(db, blue_id)
    assert (row["amount_cents"], row["status"]) == (710, "cancelled")
    query(db, "UPDATE orders SET updated_at = now() WHERE id = %s", (blue_id,))  # touches neither side
    assert (order_row(db, blue_id)["amount_cents"], str(order_row(db, blue_id)["amount"])) == (710, "7.10")

    # A row the backfill has not reached yet gets its new columns on its first write.
    query(db, "UPDATE orders SET updated_at = now() WHERE id = 3")
    row = order_row(db, 3)
    assert row["amount"] * 100 == row["amount_cents"] and row["status_v2"] == row["status"]

    # line_items and users.
    (item_id,) = query(db, "INSERT INTO line_items (order_id, sku, quantity, unit_price, created_at, updated_at)"
                           " VALUES (1, 'SKU-X', 2, 3.50, now(), now()) RETURNING id")[0]
    assert query(db, "SELECT unit_price_cents FROM line_items WHERE id = %s", (item_id,)) == [(350,)]
    query(db, "UPDATE line_items SET unit_price_cents = 199 WHERE id = %s", (item_id,))
    assert query(db, "SELECT unit_price::text FROM line_items WHERE id = %s", (item_id,)) == [("1.99",)]
    (user_id,) = query(db, "INSERT INTO users (email, created_at, updated_at) VALUES ('  Mixed.Case@Example.ORG ', now(), now())"
                           " RETURNING id")[0]
    assert query(db, "SELECT email_normalized FROM users WHERE id = %s", (user_id,)) == [("mixed.case@example.org",)]
    with pytest.raises(psycopg2.errors.UniqueViolation):  # the same person again, other spelling
        query(db, "INSERT INTO users (email, created_at, updated_at) VALUES ('mixed.case@example.org', now(), now())")


def test_writes_of_both_apps_survive_the_down_migration_with_their_legacy_values(db: str) -> None:
    expand(db)
    blue, green = AppSession(db, "blue"), AppSession(db, "green")
    try:
        blue_order = blue.blue_create_order(1, 4321)
        green_order = green.green_create_order(2, "98.76", "USD")
        green_cents = green.green_create_order(3, "5.00")  # what green stores for amount_cents: 500
        green_user = green.green_create_user(" New.Person@Example.com", "New")
        blue_user = blue.blue_create_user("Blue.Person@Example.com")
        # Both apps read the same order alike (green adds amount and currency).
        seen_by_blue = blue.blue_get_order(green_order["id"])
        seen_by_green = green.green_get_order(green_order["id"])
        assert seen_by_blue["amount_cents"] == seen_by_green["amount_cents"] == 9876
        assert seen_by_blue["status"] == seen_by_green["status"] == "pending"
        assert (seen_by_green["amount"], seen_by_green["currency"]) == ("98.76", "USD")
        assert set(seen_by_blue) <= set(seen_by_green)
    finally:
        blue.close()
        green.close()
    query(db, "UPDATE orders SET status_v2 = 'shipped' WHERE id = %s", (green_order["id"],))  # green ships it
    query(db, "UPDATE orders SET status = 'paid' WHERE id = %s", (blue_order["id"],))  # blue marks paid
    before_down = fingerprints.table_fingerprints(db, LEGACY_TABLES)

    contract_back(db)

    assert fingerprints.table_fingerprints(db, LEGACY_TABLES) == before_down
    assert query(db, "SELECT id, amount_cents, status FROM orders WHERE id = ANY(%s) ORDER BY id",
                 ([blue_order["id"], green_order["id"], green_cents["id"]],)) == [
        (blue_order["id"], 4321, "paid"), (green_order["id"], 9876, "shipped"), (green_cents["id"], 500, "pending")]
    assert query(db, "SELECT email FROM users WHERE id = ANY(%s) ORDER BY id", ([green_user["id"], blue_user["id"]],)) == [
        (" New.Person@Example.com",), ("Blue.Person@Example.com",)]


def test_down_migration_refuses_while_an_order_has_a_currency_rails_cannot_hold(db: str) -> None:
    expand(db)
    green = AppSession(db, "green")
    try:
        euro = green.green_create_order(2, "98.76", "EUR")
    finally:
        green.close()
    before = schema_of(db)
    with pytest.raises(migrations.MigrationError,
                       match=rf"would lose data: 1 order\(s\) have a currency other than USD \(ids {euro['id']}\)"):
        migrations.migrate_down(db, EXPAND_VERSION, expected_current=EXPAND_VERSION)
    assert schema_of(db) == before  # nothing dropped: the refusal is the transaction's first statement
    assert query(db, "SELECT currency FROM orders WHERE id = %s", (euro["id"],)) == [("EUR",)]
    # Once no order needs a currency (here: the operator moved it out), the down migration runs.
    query(db, "DELETE FROM line_items WHERE order_id = %s", (euro["id"],))
    query(db, "DELETE FROM orders WHERE id = %s", (euro["id"],))
    contract_back(db)


# ------------------------------------------------------------------------------- backfill


def test_backfill_is_complete_idempotent_and_leaves_legacy_values_alone(db: str) -> None:
    legacy_before = fingerprints.table_fingerprints(db, LEGACY_TABLES)
    with pytest.raises(MigrationError, match="backfill needs schema 20261126000001"):
        migrations.backfill(db)
    expand(db)
    total = sum(count for (count,) in query(db, "SELECT count(*) FROM orders UNION ALL SELECT count(*) FROM line_items"
                                                " UNION ALL SELECT count(*) FROM users"))
    assert sum(count for _, count in inconsistent_rows(db)) == total  # nothing filled yet

    partial = migrations.backfill(db, batch_size=300, max_batches=2)
    assert partial.batches == 2 and 0 < partial.rows <= 600 and partial.remaining == total - partial.rows
    assert not partial.complete

    done = migrations.backfill(db, batch_size=300)
    assert done.complete and done.remaining == 0 and partial.rows + done.rows == total
    assert done.max_batch_seconds < 1.0
    assert [count for _, count in inconsistent_rows(db)] == [0, 0, 0]
    again = migrations.backfill(db, batch_size=300)
    assert again.rows == 0 and again.complete
    assert fingerprints.table_fingerprints(db, LEGACY_TABLES) == legacy_before


def test_vacuum_analyze_after_the_backfill(db: str) -> None:
    expand(db)
    assert migrations.backfill(db).complete
    assert migrations.vacuum_analyze(db) >= 0
    # last_vacuum is a manual VACUUM's (autovacuum sets last_autovacuum); the dead row versions
    # the backfill left are gone.
    stats = query(db, "SELECT relname, last_vacuum IS NOT NULL, last_analyze IS NOT NULL, n_dead_tup "
                      "FROM pg_stat_user_tables WHERE relname IN ('users', 'orders', 'line_items') ORDER BY relname")
    assert stats == [("line_items", True, True, 0), ("orders", True, True, 0), ("users", True, True, 0)]
    with pytest.raises(MigrationError, match="not a backfilled table"):
        migrations.vacuum_analyze(db, ["schema_migrations"])


def test_backfill_while_both_apps_write(db: str) -> None:
    expand(db)
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        blue, green = AppSession(db, "blue"), AppSession(db, "green")
        try:
            for n in itertools.count():
                if stop.is_set():
                    break
                if n % 2:
                    order = blue.blue_create_order(1 + n % 50, 100 + n)
                else:
                    order = green.green_create_order(1 + n % 50, f"{n}.25")
                written.append(order["id"])
                target = 1 + (n * 37) % 2000  # and both apps update existing, maybe not yet backfilled, rows
                if n % 2:
                    blue.fetch_one("UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = %s RETURNING id", (target,))
                else:
                    green.fetch_one("UPDATE orders SET status_v2 = 'shipped' WHERE id = %s RETURNING id", (target,))
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            blue.close()
            green.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        before = len(written)
        # Small batches: many short transactions, so the writer's inserts and updates interleave
        # with the backfill however fast this machine is (batches of 50 were over in 18 writes).
        report = migrations.backfill(db, batch_size=10)
        during = len(written) - before
    finally:
        stop.set()
        thread.join(10)
    assert errors == []
    assert during >= 5, f"the writer must actually have overlapped the backfill (wrote {during} during it)"
    assert report.complete
    assert [count for _, count in inconsistent_rows(db)] == [0, 0, 0]
    assert query(db, "SELECT count(*) FROM orders WHERE id = ANY(%s)", (written,)) == [(len(written),)]


# ------------------------------------------------------------------------------- backups


def test_backup_verifies_and_detects_a_live_change(db: str, tmp_path: Path) -> None:
    record = backup.backup_database(db, tmp_path)
    assert Path(record.path).stat().st_size == record.bytes > 0 and len(record.sha256) == 64
    assert record.schema_version == BASE_VERSION and record.fingerprints["orders"]["count"] == 2000
    # The bound of the dumped rows (nobody writes here, so it is max(id)); tables without an id have none.
    orders = record.fingerprints["orders"]
    assert (orders["max_id"], orders["count_to_max_id"]) == (query(db, "SELECT max(id) FROM orders")[0][0], 2000)
    assert "max_id" not in record.fingerprints["schema_migrations"]
    assert json.loads(json.dumps(record.as_dict())) == record.as_dict()  # XCom-safe
    assert backup.BackupRecord.from_dict(record.as_dict()) == record

    clean = verify.verify_backup(db, record, scratch_db="cutover_verify_t")
    assert clean.verified and clean.mismatches == [] and clean.restored_matches_dump
    assert clean.tables["orders"]["live_count"] == clean.tables["orders"]["restored_count"] == 2000
    assert clean.tables["line_items"]["live_checksum"] == clean.tables["line_items"]["restored_checksum"]
    assert query(db, "SELECT count(*) FROM pg_database WHERE datname = 'cutover_verify_t'") == [(0,)], "scratch dropped"

    query(db, "UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = 7")  # same count, other content
    changed = verify.verify_backup(db, record, scratch_db="cutover_verify_t")
    assert not changed.verified and changed.restored_matches_dump
    assert len(changed.mismatches) == 1 and changed.mismatches[0].startswith("orders: live 2000 rows")

    tampered = replace(record, sha256="0" * 64)
    assert verify.verify_backup(db, tampered).mismatches[0].endswith("does not match its recorded sha256 (corrupted or replaced)")
    with pytest.raises(BackupError, match="would be dropped"):
        verify.verify_backup(db, record, scratch_db=psycopg2.extensions.parse_dsn(db)["dbname"])


def test_verification_lists_the_whole_archive_and_restores_rows_without_post_data(db: str, tmp_path: Path) -> None:
    """The comparison copy holds every table and row, unlogged, and none of the archive's indexes,
    constraints or triggers; the expanded schema (an enum, numerics) still fingerprints the same
    after a restore, since enum values hash by OID and are hashed as text instead."""
    expand(db)
    migrations.backfill(db)
    record = backup.backup_database(db, tmp_path)
    assert {entry["hash"] for entry in record.fingerprints.values()} == {"record"}
    verification = verify.verify_backup(db, record, scratch_db="cutover_verify_pd")
    assert verification.verified and verification.restored_matches_dump, verification.mismatches
    listed = subprocess.run(["pg_restore", "--list", record.path], capture_output=True, text=True, check=True).stdout
    assert verification.archive_entries == len([line for line in listed.splitlines() if line and not line.startswith(";")])
    for post_data in (" INDEX public ", " CONSTRAINT public orders orders_pkey", " FK CONSTRAINT public ", " TRIGGER public "):
        assert post_data in listed, f"{post_data.strip()} entries are in the archive"

    scratch = restore.restore_to_scratch(db, record, "cutover_scratch_pd")
    try:
        assert query(scratch, "SELECT count(*) FROM orders") == query(db, "SELECT count(*) FROM orders")
        assert query(scratch, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'") == [(0,)]
        assert query(scratch, "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") == [(0,)]
        assert set(query(scratch, "SELECT relpersistence, array_to_string(reloptions, ',') FROM pg_class "
                                  "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")) == {
            ("u", "autovacuum_enabled=false")}
        assert query(scratch, "SELECT max(version) FROM schema_migrations") == [(EXPAND_VERSION,)]
    finally:
        restore.drop_scratch(db, "cutover_scratch_pd")


def test_a_truncated_archive_fails_verification_even_with_a_matching_record(db: str, tmp_path: Path) -> None:
    record = backup.backup_database(db, tmp_path)
    path = Path(record.path)
    path.write_bytes(path.read_bytes()[: record.bytes // 2])  # the TOC (at the start) still reads
    rerecorded = replace(record, bytes=path.stat().st_size, sha256=backup._sha256(path))
    with pytest.raises(BackupError, match="pg_restore into cutover_verify_tr failed"):
        verify.verify_backup(db, rerecorded, scratch_db="cutover_verify_tr")
    assert query(db, "SELECT count(*) FROM pg_database WHERE datname = 'cutover_verify_tr'") == [(0,)], "scratch dropped"


def test_records_fingerprinted_as_text_before_still_verify_and_restore(db: str, tmp_path: Path) -> None:
    """Backups recorded before the typed-hash fingerprints (no "hash" key: rows hashed as text)."""
    record = backup.backup_database(db, tmp_path)
    text = fingerprints.snapshot_fingerprints(db, {table: "text" for table in record.fingerprints})
    old = {table: {key: value for key, value in {**record.fingerprints[table], **text[table]}.items() if key != "hash"}
           for table in record.fingerprints}
    assert all(old[t]["checksum"] != record.fingerprints[t]["checksum"] for t in LEGACY_TABLES)
    old_record = replace(record, fingerprints=old)
    verification = verify.verify_backup(db, old_record, scratch_db="cutover_verify_old")
    assert verification.verified and verification.restored_matches_dump, verification.mismatches
    assert restore.restore_database(db, old_record).schema_version == BASE_VERSION


def test_restore_database_brings_back_the_backed_up_state(db: str, tmp_path: Path) -> None:
    expand(db)
    migrations.backfill(db)
    record = backup.backup_database(db, tmp_path)
    everything = tuple(record.fingerprints)
    at_backup = fingerprints.table_fingerprints(db, everything)
    query(db, "DELETE FROM line_items WHERE order_id <= 10")  # the disaster
    query(db, "UPDATE users SET email = 'oops' || id || '@x.test' WHERE id <= 5")
    after_disaster = fingerprints.table_fingerprints(db, everything)
    assert after_disaster != at_backup
    app_session = psycopg2.connect(db)  # an app connection that must be cut off

    report = restore.restore_database(db, record)

    assert fingerprints.table_fingerprints(db, everything) == at_backup
    assert report.schema_version == EXPAND_VERSION and report.downtime_seconds < 5
    with pytest.raises(psycopg2.OperationalError):
        app_session.cursor().execute("SELECT 1")
    kept = psycopg2.extensions.make_dsn(db, dbname=report.previous_database)
    assert fingerprints.table_fingerprints(kept, everything) == after_disaster, "the pre-restore database is kept"
    expand_again = migrations.migrate_up(db, EXPAND_VERSION, expected_current=BASE_VERSION)
    assert expand_again.noop  # restored database carries its schema version


# ------------------------------------------------------------------------------- apps


def test_green_needs_the_expanded_schema_and_follows_the_migrations(db: str, tmp_path: Path) -> None:
    # The cache of the schema version (at most one read per second) is green's unit test
    # (sandbox/apps/typescript/test/app.test.ts); here the real app under real migrations.
    green, blue = GreenProcess(db, tmp_path), AppSession(db, "blue")
    try:
        answer = requests.get(f"{green.url}/readyz", timeout=2)
        assert answer.status_code == 503
        assert answer.json()["error"] == "schema version 20240101000000 < required 20261126000001"
        refused = requests.post(f"{green.url}/api/orders", json={"user_id": 1, "amount_cents": 100}, headers=OWN_CODE, timeout=2)
        assert (refused.status_code, refused.json()["error"]) == (503, answer.json()["error"])

        expand(db)
        deadline = time.monotonic() + 3
        while requests.get(f"{green.url}/readyz", timeout=2).status_code != 200:
            assert time.monotonic() < deadline, "green did not notice the migration within its 1 s cache"
            time.sleep(0.1)
        created = requests.post(f"{green.url}/api/orders", json={"user_id": 1, "amount": 12.34}, headers=OWN_CODE, timeout=2)
        assert created.status_code == 201
        order_id = created.json()["id"]
        from_green = requests.get(f"{green.url}/api/orders/{order_id}", headers=OWN_CODE, timeout=2).json()
        from_blue = blue.blue_get_order(order_id)  # what Rails reads: the legacy columns
        assert from_green["amount_cents"] == from_blue["amount_cents"] == 1234
        assert (from_green["amount"], from_green["currency"], from_green["status"]) == ("12.34", "USD", "pending")
        assert from_blue["status"] == "pending" and from_blue["user_id"] == from_green["user_id"] == 1
        bad = requests.post(f"{green.url}/api/orders", json={"user_id": 1, "amount": "1.005"}, headers=OWN_CODE, timeout=2)
        assert bad.status_code == 400 and "2 decimal places" in bad.json()["error"]

        contract_back(db)  # green must then step back out of rotation, not serve half a schema
        deadline = time.monotonic() + 3
        while requests.get(f"{green.url}/readyz", timeout=2).status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert blue.blue_get_order(order_id)["amount_cents"] == 1234
    finally:
        green.close()
        blue.close()


# ------------------------------------------------------------------------------- data generator


def test_datagen_is_deterministic_and_refuses_to_overwrite(db: str) -> None:
    pristine = fingerprints.table_fingerprints(db, LEGACY_TABLES)  # the fixture's data: generate(2000, 400, seed 42)
    with pytest.raises(datagen.DatagenError, match="already hold rows"):
        datagen.generate(db, orders=10)
    report = datagen.generate(db, orders=2000, users=400, seed=42, replace=True)
    assert (report.users, report.orders) == (400, 2000) and 2 * 2000 < report.line_items < 4 * 2000
    assert fingerprints.table_fingerprints(db, LEGACY_TABLES) == pristine
    datagen.generate(db, orders=2000, users=400, seed=7, replace=True)
    assert fingerprints.table_fingerprints(db, LEGACY_TABLES)["orders"] != pristine["orders"]
    emails = [email for (email,) in query(db, "SELECT email FROM users")]
    assert any(e != e.lower() for e in emails) and any(e != e.strip() for e in emails)
    assert len({e.strip().lower() for e in emails}) == len(emails), "unique once normalised"
    assert query(db, "SELECT count(DISTINCT status) FROM orders") == [(5,)]
    # Application inserts continue after the generated ids.
    (new_id,) = query(db, "INSERT INTO orders (user_id, amount_cents, status, created_at, updated_at)"
                          " VALUES (1, 100, 'paid', now(), now()) RETURNING id")[0]
    assert new_id == 2001
