"""Stage 2 Great Expectations validation against a real PostgreSQL.

One private PostgreSQL per module (conftest `postgres_only`: legacy schema, 2,000 orders). The
module migrates a copy once (the real expand migration and backfill) into `gx_pristine`; every test
clones it, plants one defect and validates. The "verified backup" is a clone of the legacy
database, which is exactly what a pg_dump taken before the migration holds; some tests go through
a real pg_dump and the restore helpers instead.

Both apps keep inserting during stage 2, so rows inserted after the snapshot/backup must pass,
while a lost or changed pre-existing row must still fail, whatever was inserted next to it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

from cutover_kit import validation
from cutover_kit.db import backup, migrations, restore
from cutover_kit.stages import database_preparation as database
from sandbox.launcher import Sandbox

pytestmark = pytest.mark.timeout(120)
_names = itertools.count()


# ------------------------------------------------------------------------------- helpers


def run_sql(dsn: str, *statements: str) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def admin(dsn: str, *statements: str) -> None:
    conn = psycopg2.connect(psycopg2.extensions.make_dsn(dsn, dbname="postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def url_of(dsn: str) -> str:
    p = psycopg2.extensions.parse_dsn(dsn)
    return validation.postgres_url(host=p["host"], port=p["port"], login=p["user"], password=p.get("password"),
                                   database=p["dbname"])


class Env:
    def __init__(self, base_dsn: str, snapshot: dict[str, dict]) -> None:
        self.base_dsn = base_dsn
        self.snapshot = snapshot

    def dsn(self, dbname: str) -> str:
        return psycopg2.extensions.make_dsn(self.base_dsn, dbname=dbname)


@pytest.fixture(scope="module")
def env(postgres_only: Sandbox) -> Iterator[Env]:
    """gx_pristine: the legacy database after the expand migration and a complete backfill;
    gx_backup: the legacy database as the pre-migration backup restores it."""
    base = postgres_only.dsn()
    snapshot = database.row_counts(base)
    admin(base, "CREATE DATABASE gx_backup TEMPLATE cutover", "CREATE DATABASE gx_pristine TEMPLATE cutover")
    pristine = psycopg2.extensions.make_dsn(base, dbname="gx_pristine")
    migrations.migrate_up(pristine, migrations.EXPAND_VERSION, expected_current=migrations.BASE_VERSION)
    assert migrations.backfill(pristine).complete
    yield Env(base, snapshot)
    admin(base, "DROP DATABASE IF EXISTS gx_pristine WITH (FORCE)", "DROP DATABASE IF EXISTS gx_backup WITH (FORCE)")


@pytest.fixture
def live(env: Env) -> Iterator[str]:
    """DSN of a fresh clone of the migrated database."""
    name = f"gx_live_{next(_names)}_{int(time.time() * 1000) % 10**8}"
    admin(env.base_dsn, f"CREATE DATABASE {name} TEMPLATE gx_pristine")
    yield env.dsn(name)
    admin(env.base_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def validate(env: Env, live_dsn: str) -> validation.ValidationSummary:
    _, summary = validation.timed_validation(url_of(live_dsn), backup_url=url_of(env.dsn("gx_backup")),
                                             snapshot=env.snapshot)
    return summary


def line_for(summary: validation.ValidationSummary, name: str) -> str:
    found = [line for line in summary.lines if line.split(" ", 1)[1].startswith(name)]
    assert len(found) == 1, f"{name!r} in {summary.lines}"
    return found[0]


# ------------------------------------------------------------------------------- clean database


def test_clean_migrated_database_passes_every_expectation(env: Env, live: str) -> None:
    summary = validate(env, live)
    assert summary.failed == 0, "\n".join(summary.lines)
    assert summary.failed_names == []
    # users 9 (1 GX built-in + 8), orders 13, line_items 12: one line each, every one a PASS.
    assert summary.expectations == len(summary.lines) == 34
    assert all(line.startswith("PASS ") for line in summary.lines)
    orders = env.snapshot["orders"]
    assert (f"PASS orders: row count = pre-migration snapshot — {orders['count']} rows with id <= {orders['max_id']}"
            f" = snapshot, 0 newer") in summary.lines
    assert "PASS orders: unexpected rows: amount <> amount_cents/100 — 0 rows" in summary.lines
    assert "PASS line_items: unexpected rows: orphan order_id (no such order) — 0 rows" in summary.lines
    assert (f"PASS users: legacy-column checksums = backup — live = backup (ids <= {env.snapshot['users']['max_id']})"
            in summary.lines)
    for table in ("users", "orders", "line_items"):
        assert f"PASS {table}: id unique (primary key) — no duplicates" in summary.lines


def test_legacy_database_errors_name_the_missing_columns(env: Env) -> None:
    """Validating a database the migration has not reached: ERROR lines, not a crash."""
    summary = validate(env, env.dsn("gx_backup"))
    line = line_for(summary, "orders: unexpected rows: amount <> amount_cents/100")
    assert line.startswith("ERROR ") and 'column "amount" does not exist' in line
    assert "orders: amount <> amount_cents/100" in summary.failed_names
    assert "orders: legacy-column checksums = backup" not in summary.failed_names


# ------------------------------------------------------------------------------- one defect each

# (setup SQL, the failed expectations expected, exact FAIL line expected)
DEFECTS = {
    "duplicate_id": (
        ["ALTER TABLE orders DROP CONSTRAINT orders_pkey CASCADE",
         "INSERT INTO orders SELECT * FROM orders WHERE id = 7"],
        {"orders: id unique (primary key)", "orders: row count = pre-migration snapshot",
         "orders: legacy-column checksums = backup"},
        "FAIL orders: id unique (primary key) — 2 rows share an id (ids 7)",
    ),
    "null": (
        ["ALTER TABLE orders ALTER COLUMN user_id DROP NOT NULL", "UPDATE orders SET user_id = NULL WHERE id = 9"],
        {"orders: user_id not null", "orders: legacy-column checksums = backup"},
        "FAIL orders: user_id not null — 1 NULL (ids 9)",
    ),
    "orphan": (
        ["ALTER TABLE orders DROP CONSTRAINT fk_rails_orders_user_id",
         "UPDATE orders SET user_id = 99999999 WHERE id IN (11, 12)"],
        {"orders: orphan user_id (no such user)", "orders: legacy-column checksums = backup"},
        "FAIL orders: unexpected rows: orphan user_id (no such user) — 2 rows (ids 11, 12)",
    ),
    "wrong_status": (
        ["ALTER TABLE orders DROP CONSTRAINT orders_status_check",
         "ALTER TABLE orders DISABLE TRIGGER orders_sync_shapes",  # the trigger would refuse the value
         "UPDATE orders SET status = 'lost' WHERE id = 5"],
        {"orders: status in allowed set", "orders: status_v2 <> status", "orders: legacy-column checksums = backup"},
        "FAIL orders: status in allowed set — 1 row outside the set ('lost') (ids 5)",
    ),
    "changed_amount": (
        ["ALTER TABLE orders DISABLE TRIGGER orders_sync_shapes",  # else amount_cents would follow
         "UPDATE orders SET amount = amount + 1 WHERE id IN (17, 42, 99)"],
        {"orders: amount <> amount_cents/100"},
        "FAIL orders: unexpected rows: amount <> amount_cents/100 — 3 rows (ids 17, 42, 99)",
    ),
    "changed_unit_price": (
        ["ALTER TABLE line_items DISABLE TRIGGER line_items_sync_shapes",
         "UPDATE line_items SET unit_price = unit_price * 2 WHERE id = (SELECT min(id) FROM line_items)"],
        {"line_items: unit_price <> unit_price_cents/100"},
        "FAIL line_items: unexpected rows: unit_price <> unit_price_cents/100 — 1 row (ids 1)",
    ),
    "stale_email_normalized": (
        ["ALTER TABLE users DISABLE TRIGGER users_sync_shapes",
         "UPDATE users SET email_normalized = upper(email_normalized) WHERE id = 3"],
        {"users: email_normalized <> lower(btrim(email))"},
        "FAIL users: unexpected rows: email_normalized <> lower(btrim(email)) — 1 row (ids 3)",
    ),
    "missing_row": (
        ["DELETE FROM line_items WHERE id = (SELECT max(id) FROM line_items)"],
        {"line_items: row count = pre-migration snapshot", "line_items: legacy-column checksums = backup"},
        None,  # the line depends on the snapshot; checked in the test
    ),
    "checksum_only": (
        # A legacy value with no new-shape twin: counts and shapes agree, only the checksum sees it.
        ["UPDATE line_items SET quantity = quantity + 1 WHERE id = (SELECT max(id) FROM line_items)"],
        {"line_items: legacy-column checksums = backup"},
        None,
    ),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_fails_exactly_its_expectations(env: Env, live: str, defect: str) -> None:
    statements, expected_failures, expected_line = DEFECTS[defect]
    run_sql(live, *statements)
    summary = validate(env, live)
    assert set(summary.failed_names) == expected_failures, "\n".join(summary.lines)
    assert summary.failed == len(expected_failures)
    assert summary.expectations == 34
    if expected_line:
        assert expected_line in summary.lines, "\n".join(summary.lines)
    if defect == "missing_row":
        count, max_id = env.snapshot["line_items"]["count"], env.snapshot["line_items"]["max_id"]
        assert (f"FAIL line_items: row count = pre-migration snapshot — {count - 1} rows with id <= {max_id}, "
                f"snapshot {count} (-1)" in summary.lines)
    if defect in ("missing_row", "checksum_only"):
        checksum = line_for(summary, "line_items: legacy-column checksums = backup")
        assert checksum.startswith("FAIL line_items: legacy-column checksums = backup — live vs backup (ids <= ")
        assert "quantity_sum" in checksum and "row hashes differ" in checksum


# ------------------------------------------------------------------------------- writes during stage 2

# What the apps do while stage 2 runs: blue and green insert users and orders (green writes only the
# new columns, the triggers fill the legacy ones), and line_items arrive for a new order. One of each
# table at least, so a whole-table count would be off by as much as the defects below.
APP_INSERTS = [
    "INSERT INTO users (email, name, created_at, updated_at) VALUES ('blue-new@example.test', 'Blue', now(), now())",
    "INSERT INTO users (email, email_normalized, name, created_at, updated_at) "
    "VALUES ('Green-New@example.test', 'green-new@example.test', 'Green', now(), now())",
    "INSERT INTO orders (user_id, amount_cents, status, created_at, updated_at) "
    "SELECT max(id), 1250, 'pending', now(), now() FROM users",
    "INSERT INTO orders (user_id, amount, currency, status_v2, created_at, updated_at) "
    "SELECT min(id), 19.99, 'USD', 'pending', now(), now() FROM users",
    "INSERT INTO line_items (order_id, sku, quantity, unit_price_cents, created_at, updated_at) "
    "SELECT max(id), 'SKU-NEW', 2, 625, now(), now() FROM orders",
]


@pytest.fixture(scope="module")
def backup_record(env: Env, tmp_path_factory: pytest.TempPathFactory) -> backup.BackupRecord:
    """A real pg_dump of the pre-migration database (what stage 2 takes before the expand)."""
    return backup.backup_database(env.dsn("gx_backup"), tmp_path_factory.mktemp("backups"))


def test_rows_inserted_after_the_backup_pass_every_expectation(env: Env, live: str,
                                                               backup_record: backup.BackupRecord) -> None:
    snapshot = database.snapshot_from_backup(backup_record.as_dict())
    assert snapshot == env.snapshot
    scratch = restore.restore_to_scratch(live, backup_record, "gx_scratch_inserts")
    try:
        assert psycopg2.extensions.parse_dsn(scratch)["dbname"] == "gx_scratch_inserts"
        run_sql(live, *APP_INSERTS)
        _, summary = validation.timed_validation(url_of(live), backup_url=url_of(scratch), snapshot=snapshot)
    finally:
        restore.drop_scratch(live, "gx_scratch_inserts")
    assert summary.failed == 0, "\n".join(summary.lines)
    assert summary.expectations == 34
    for table, new in (("users", 2), ("orders", 2), ("line_items", 1)):
        count, max_id = snapshot[table]["count"], snapshot[table]["max_id"]
        assert (f"PASS {table}: row count = pre-migration snapshot — {count} rows with id <= {max_id} = snapshot, "
                f"{new} newer") in summary.lines
        assert f"PASS {table}: legacy-column checksums = backup — live = backup (ids <= {max_id})" in summary.lines


# (setup SQL on top of APP_INSERTS, the failed expectations expected, start of the FAIL line expected)
DEFECTS_AMID_INSERTS = {
    # One line item lost, one inserted: the whole table has as many rows as the snapshot.
    "deleted_pre_existing_row": (
        ["DELETE FROM line_items WHERE id = (SELECT id FROM line_items ORDER BY id OFFSET 100 LIMIT 1)"],
        {"line_items: row count = pre-migration snapshot", "line_items: legacy-column checksums = backup"},
        "FAIL line_items: row count = pre-migration snapshot — {count_minus_1} rows with id <= {max_id}, "
        "snapshot {count} (-1)",
    ),
    # The trigger keeps amount in step, so only the checksum of the legacy columns can see it.
    "changed_legacy_amount_cents": (
        ["UPDATE orders SET amount_cents = amount_cents + 100 WHERE id = 42"],
        {"orders: legacy-column checksums = backup"},
        "FAIL orders: legacy-column checksums = backup — live vs backup (ids <= {max_id}): ",
    ),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS_AMID_INSERTS))
def test_defects_among_pre_existing_rows_fail_despite_new_rows(env: Env, live: str, defect: str) -> None:
    statements, expected_failures, expected_start = DEFECTS_AMID_INSERTS[defect]
    run_sql(live, *APP_INSERTS, *statements)
    summary = validate(env, live)
    assert set(summary.failed_names) == expected_failures, "\n".join(summary.lines)
    assert summary.expectations == 34
    table = next(iter(expected_failures)).split(":")[0]
    count, max_id = env.snapshot[table]["count"], env.snapshot[table]["max_id"]
    start = expected_start.format(count=count, count_minus_1=count - 1, max_id=max_id)
    assert [line for line in summary.lines if line.startswith(start)], "\n".join(summary.lines)
    if defect == "changed_legacy_amount_cents":
        assert "amount_cents_sum" in line_for(summary, "orders: legacy-column checksums = backup")


@pytest.mark.parametrize("source", ["snapshot_row_counts", "backup_record"])
def test_a_row_committed_after_the_snapshot_below_its_max_id_is_not_pre_existing(env: Env, live: str, tmp_path: Path,
                                                                                 source: str) -> None:
    """An app takes id N, a second app takes N+1 and commits, the snapshot is taken, then N commits.
    max(id) at the snapshot was N+1, yet row N appears below it afterwards: the snapshot must settle
    its bound below N (it waits for the writers open at the snapshot), or the count would fail."""
    slow = psycopg2.connect(live)
    scratch = None
    try:
        with slow.cursor() as cur:
            cur.execute("INSERT INTO users (email, name, created_at, updated_at) "
                        "VALUES ('slow@example.test', 'Slow', now(), now()) RETURNING id")
            slow_id = cur.fetchone()[0]
        run_sql(live, "INSERT INTO users (email, name, created_at, updated_at) "
                      "VALUES ('fast@example.test', 'Fast', now(), now())")
        commit_later = threading.Timer(0.5, slow.commit)
        commit_later.start()
        started = time.monotonic()
        if source == "snapshot_row_counts":
            snapshot = database.row_counts(live)
            backup_dsn = env.dsn("gx_backup")
        else:
            record = backup.backup_database(live, tmp_path)
            snapshot = database.snapshot_from_backup(record.as_dict())
            # The dump holds "fast" but not "slow": the checksums must not count slow's id either.
            scratch = backup_dsn = restore.restore_to_scratch(live, record, "gx_scratch_race")
        waited = time.monotonic() - started
        commit_later.join()
        assert waited >= 0.4, "the snapshot must wait for the open write transaction"
        assert snapshot["users"] == {"count": env.snapshot["users"]["count"], "max_id": slow_id - 1}
        assert snapshot["orders"] == env.snapshot["orders"]
        _, summary = validation.timed_validation(url_of(live), backup_url=url_of(backup_dsn), snapshot=snapshot)
    finally:
        slow.close()
        if scratch:
            restore.drop_scratch(live, "gx_scratch_race")
    assert summary.failed == 0, "\n".join(summary.lines)
    users = f"{env.snapshot['users']['count']} rows with id <= {slow_id - 1} = snapshot, 2 newer"
    assert f"PASS users: row count = pre-migration snapshot — {users}" in summary.lines


# ------------------------------------------------------------------------------- the task callable


def test_task_fails_naming_expectations_and_writes_artifacts(env: Env, live: str, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    run_sql(live, "ALTER TABLE orders DISABLE TRIGGER orders_sync_shapes",
            "UPDATE orders SET amount = amount + 1 WHERE id IN (17, 42, 99)")
    caplog.set_level("INFO", logger="cutover_kit.stages.database_preparation")
    with pytest.raises(AirflowFailException) as failure:
        database.validate_and_report(url_of(live), backup_url=url_of(env.dsn("gx_backup")), snapshot=env.snapshot,
                                     tables=None, out_dir=tmp_path / "gx")
    message = str(failure.value)
    assert message.startswith("GX validation failed: 1 of 34 expectations: ")
    assert "orders: unexpected rows: amount <> amount_cents/100 — 3 rows (ids 17, 42, 99)" in message
    logged = [r.getMessage() for r in caplog.records if r.name == "cutover_kit.stages.database_preparation"]
    assert sum(1 for m in logged if m.startswith(("PASS ", "FAIL ", "ERROR "))) == 34
    payload = json.loads((tmp_path / "gx" / "validation.json").read_text())
    assert payload["summary"]["failed_names"] == ["orders: amount <> amount_cents/100"]
    assert len(payload["results"]) == 4  # users: constraints + data; orders, line_items: data
    assert (tmp_path / "gx" / "summary.txt").read_text().count("\n") == 34
    assert (tmp_path / "gx" / "validation.html").stat().st_size > 1000


def test_airflow_callable_with_a_real_backup_restored_for_validation(env: Env, live: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_dump of the legacy database, restored by restore_backup_for_validation, compared with
    the migrated live database (with the apps' inserts since) through Airflow Connections."""
    p = psycopg2.extensions.parse_dsn(live)
    connection = {"conn_type": "postgres", "host": p["host"], "port": int(p["port"]), "login": p["user"],
                  "password": p["password"], "schema": p["dbname"]}
    monkeypatch.setenv("AIRFLOW_CONN_GX_LIVE", json.dumps(connection))
    monkeypatch.setenv(database.ARTIFACT_ENV, str(tmp_path / "artifacts"))
    record = backup.backup_database(env.dsn("gx_backup"), tmp_path / "backups")
    scratch = database.restore_backup_for_validation(record.as_dict(), conn_id="gx_live", scratch_db="gx_scratch")
    try:
        snapshot = database.snapshot_from_backup(record.as_dict())
        assert snapshot == env.snapshot
        run_sql(live, *APP_INSERTS)
        report = database.validate_migration(snapshot, conn_id="gx_live", backup_database=scratch,
                                             run_id="manual__2026-11-26T10:00:00+00:00")
    finally:
        database.drop_backup_scratch(conn_id="gx_live", scratch_db="gx_scratch")
    assert report["failed"] == 0 and report["expectations"] == 34, "\n".join(report["lines"])
    out = tmp_path / "artifacts" / "manual__2026-11-26T10_00_00_00_00"
    assert [Path(a) for a in report["artifacts"]][:2] == [out / "validation.json", out / "summary.txt"]


# ------------------------------------------------------------------------------- inside a DAG run

DAG_SCRIPT = '''
import json
from datetime import datetime

from airflow.sdk import DAG, TaskGroup, task

from cutover_kit.stages import database_preparation
from cutover_kit.stages._shared import connection_dsn


def snapshot_row_counts(conn_id):
    return database_preparation.row_counts(connection_dsn(conn_id))


with DAG("gx_stage_02_test", schedule=None, start_date=datetime(2026, 1, 1), default_args={"retries": 2}) as dag:
    with TaskGroup("stage_02_database_preparation"):
        snapshot = task(snapshot_row_counts, task_id="snapshot_row_counts")(conn_id="gx_backup")
        task(database_preparation.validate_migration, task_id="validate_migration_gx")(
            snapshot, conn_id="gx_live", backup_conn_id="gx_backup")

if __name__ == "__main__":  # dag.test() parses this file again: run only once
    from airflow.utils import db

    db.resetdb()
    run = dag.test()
    print("STATES " + json.dumps({ti.task_id: str(ti.state) for ti in run.get_task_instances()}))
'''


def run_dag(tmp_path: Path, live_dsn: str, backup_dsn: str) -> tuple[dict[str, str], str]:
    """dag.test() of a two-task stage-2 group in a fresh process with its own SQLite AIRFLOW_HOME."""
    import os
    import subprocess
    import sys

    def connection(dsn: str) -> str:
        p = psycopg2.extensions.parse_dsn(dsn)
        return json.dumps({"conn_type": "postgres", "host": p["host"], "port": int(p["port"]), "login": p["user"],
                           "password": p["password"], "schema": p["dbname"]})

    home = tmp_path / "airflow"
    home.mkdir()
    repo = Path(__file__).resolve().parents[2]
    script = tmp_path / "stage_02_dag.py"
    script.write_text(DAG_SCRIPT)
    env = dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
               AIRFLOW__CORE__DAGS_FOLDER=str(tmp_path), PYTHONPATH=f"{repo}{os.pathsep}{repo / 'plugins'}",
               AIRFLOW_CONN_GX_LIVE=connection(live_dsn), AIRFLOW_CONN_GX_BACKUP=connection(backup_dsn),
               CUTOVER_GX_ARTIFACT_DIR=str(tmp_path / "artifacts"))
    done = subprocess.run([sys.executable, str(script)], cwd=repo, env=env, capture_output=True, text=True, timeout=100)
    output = done.stdout + done.stderr
    states = [line for line in output.splitlines() if line.startswith("STATES ")]
    assert states, output[-3000:]
    return json.loads(states[-1].removeprefix("STATES ")), output


def test_dag_run_fails_the_task_with_one_log_line_per_expectation(env: Env, live: str, tmp_path: Path) -> None:
    run_sql(live, "ALTER TABLE orders DISABLE TRIGGER orders_sync_shapes",
            "UPDATE orders SET amount = amount + 1 WHERE id IN (17, 42, 99)")
    states, output = run_dag(tmp_path, live, env.dsn("gx_backup"))
    assert states == {"stage_02_database_preparation.snapshot_row_counts": "success",
                      "stage_02_database_preparation.validate_migration_gx": "failed"}, output[-3000:]
    assert "FAIL orders: unexpected rows: amount <> amount_cents/100 — 3 rows (ids 17, 42, 99)" in output
    assert output.count("PASS ") >= 33
    assert "GX validation failed: 1 of 34 expectations" in output
    assert "Skipping registering function" not in output  # the GX import flood stays silent
    assert len(list((tmp_path / "artifacts").glob("*/validation.json"))) == 1
