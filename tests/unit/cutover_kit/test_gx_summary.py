"""Stage 2 GX glue without a database: lazy imports, SQL shapes, one line per expectation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cutover_kit.validation import ValidationSummary, save_artifacts, summarize_validation
from include.gx import suites

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_modules_do_not_import_great_expectations_at_import_time() -> None:
    code = ("import sys; import include.gx.suites, cutover_kit.validation, cutover_kit.stages.database_preparation; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'great_expectations'))")  # not the provider's metadata
    env = {"PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'plugins'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_row_check_sql_counts_in_parallel_and_fetches_ids_only_for_a_failure() -> None:
    orphan = next(c for c in suites.row_checks("line_items") if c.name.startswith("orphan"))
    assert not orphan.scanned
    assert orphan.sql == (
        "SELECT found.unexpected_rows, CASE WHEN found.unexpected_rows > 0 THEN ARRAY(SELECT t.id FROM {batch} AS t "
        "LEFT JOIN orders AS p ON p.id = t.order_id WHERE t.order_id IS NOT NULL AND p.id IS NULL ORDER BY t.id "
        "LIMIT 10) END AS sample_ids FROM (SELECT count(*) AS unexpected_rows FROM {batch} AS t LEFT JOIN orders AS p "
        "ON p.id = t.order_id WHERE t.order_id IS NOT NULL AND p.id IS NULL) AS found WHERE found.unexpected_rows > 0")
    assert [c.name for c in suites.row_checks("users") if not c.scanned] == []  # users has no foreign key


def test_every_check_of_a_table_is_listed_once_in_log_order() -> None:
    names = [check.name for check in suites.row_checks("orders")]
    assert names == ["id not null", "user_id not null", "amount_cents not null", "status not null",
                     "created_at not null", "updated_at not null", "status in allowed set", "id unique (primary key)",
                     "orphan user_id (no such user)", "amount <> amount_cents/100", "status_v2 <> status"]
    assert [c.name for c in suites.row_checks("orders") if not c.scanned] == ["orphan user_id (no such user)"]
    for table in suites.TABLES:  # each scan check has its own columns in its table's scan
        keys = [c.key for c in suites.row_checks(table) if c.scanned]
        assert len(keys) == len(set(keys)) and all(keys)


def test_table_scan_folds_the_scan_checks_and_the_row_count_into_one_pass() -> None:
    checks = suites.row_checks("orders")
    sql = suites.table_scan_sql("orders", checks, {"count": 1999, "max_id": 2000})
    scanned = [check for check in checks if check.scanned]
    assert len(scanned) == 10  # 6 NOT NULL, the status set, the primary key, amount, status_v2
    # One pass (the last FROM) and the distinct ids; then, only for a check that found rows, one
    # ids query per check, a values query for the status, and the duplicated ids' rows and ids.
    assert sql.endswith(" FROM {batch}) AS scan") and sql.count("FROM {batch}") == 2 + 9 + 1 + 2
    assert "count(*) - (SELECT count(*) FROM (SELECT DISTINCT id FROM {batch}) AS u) AS duplicate_id_extra" in sql
    assert ("CASE WHEN scan.duplicate_id_extra > 0 THEN (SELECT sum(n) FROM (SELECT id, count(*) AS n FROM {batch} "
            "GROUP BY id HAVING count(*) > 1) AS dup) END AS duplicate_id_rows") in sql
    for check in checks:
        if check.kind == "unique_key":
            continue
        if check.scanned:
            assert f"count(*) FILTER (WHERE {check.where}) AS {check.key}_rows" in sql
            assert f"CASE WHEN scan.{check.key}_rows > 0 THEN ARRAY(SELECT id FROM {{batch}} WHERE {check.where} " \
                   f"ORDER BY id LIMIT 10) END AS {check.key}_ids" in sql
        else:
            assert check.sql not in sql and (check.where not in sql or not check.where)
    assert ("count(*) FILTER (WHERE id <= 2000) AS observed_rows, 1999 AS expected_rows, 2000::bigint AS max_id, "
            "count(*) FILTER (WHERE id > 2000) AS new_rows") in sql
    assert "status_outside_set_values" in sql and "array_agg" not in sql  # ordered aggregates are not parallel
    unbounded = suites.table_scan_sql("orders", [], {"count": 7, "max_id": None})
    assert unbounded == ("SELECT scan.* FROM (SELECT count(*) AS observed_rows, 7 AS expected_rows, "
                         "NULL::bigint AS max_id, 0 AS new_rows FROM {batch}) AS scan")  # no bound: whole table


def test_checksum_sql_reads_the_same_columns_on_both_sides() -> None:
    live, backup = suites.checksum_sql("orders"), suites.checksum_sql("orders", "orders")
    assert live.endswith("FROM {batch}") and backup.endswith("FROM orders")
    assert live.removesuffix("{batch}") == backup.removesuffix("orders")
    for column in ("id", "user_id", "amount_cents", "status", "created_at", "updated_at"):
        assert f"({column}, " in live
    assert "amount" not in live.replace("amount_cents", "")  # legacy columns only


def test_checksum_sql_bounds_both_sides_by_the_same_id() -> None:
    live, backup = suites.checksum_sql("orders", max_id=2000), suites.checksum_sql("orders", "orders", 2000)
    assert live.endswith("FROM {batch} WHERE id <= 2000") and backup.endswith("FROM orders WHERE id <= 2000")
    assert live.removesuffix("{batch} WHERE id <= 2000") == backup.removesuffix("orders WHERE id <= 2000")


def test_checksum_bound_is_the_smaller_of_snapshot_and_backup() -> None:
    assert suites.checksum_bound(1990, 2000) == 1990  # snapshot taken before the backup
    assert suites.checksum_bound(2010, 2000) == 2000  # after: rows above 2000 are not in the backup
    assert suites.checksum_bound(None, 2000) == 2000  # old snapshot shape, or none
    assert suites.checksum_bound(5, None) == 0  # empty backup table: every live row is new


def test_both_snapshot_shapes_are_accepted() -> None:
    assert suites.normalize_snapshot({"users": 4, "orders": {"count": 20, "max_id": 25},
                                      "line_items": {"count": 0, "max_id": None}}) == {
        "users": {"count": 4, "max_id": None}, "orders": {"count": 20, "max_id": 25},
        "line_items": {"count": 0, "max_id": None}}
    assert suites.normalize_snapshot(None) is None


def test_unknown_table_is_refused() -> None:
    with pytest.raises(ValueError, match="no suite for table 'payments'"):
        suites.row_checks("payments")


def _evr(kind: str, check: str, success: bool, result: dict, table: str = "orders", **meta) -> dict:
    return {"success": success, "result": result, "exception_info": {"raised_exception": False},
            "expectation_config": {"type": "x", "kwargs": {}, "description": check,
                                   "meta": {"table": table, "check": check, "kind": kind, **meta}}}


RESULTS = [{"success": False, "meta": {"table": "orders"}, "results": [
    _evr("not_null", "user_id not null", True, {}),
    _evr("not_null", "amount_cents not null", False,
         {"unexpected_count": 2, "partial_unexpected_index_list": [{"id": 4, "amount_cents": None},
                                                                    {"id": 8, "amount_cents": None}]}),
    _evr("row_count", "row count = pre-migration snapshot", True, {}, expected=1000),
    _evr("row_count", "row count = pre-migration snapshot", False, {"observed_value": 999, "details": {
        "expected_rows": 1000, "max_id": 1200, "new_rows": 7}}, table="users"),
    _evr("row_check", "amount <> amount_cents/100", False, {"observed_value": 3, "details": {"sample_ids": [17, 42, 99]}}),
    _evr("unique_key", "id unique (primary key)", True, {"observed_value": 0, "details": {"sample_ids": []}}),
    _evr("checksum", "legacy-column checksums = backup", False, {"unexpected_count": 1, "details": {
        "unexpected_rows": [{"row_count": 999, "id_sum": "5", "row_hash_sum": "1"}],
        "missing_rows": [{"row_count": 1000, "id_sum": "5", "row_hash_sum": "2"}]}}),
    {"success": False, "result": {}, "expectation_config": {"type": "y", "kwargs": {}, "meta": {
        "table": "orders", "check": "status_v2 <> status", "kind": "row_check"}},
     "exception_info": {"MetricConfigurationID(...)": {"raised_exception": True,
                                                       "exception_message": 'column "status_v2" does not exist'}}},
]}]


def test_one_line_per_expectation_with_observed_values() -> None:
    summary = summarize_validation(RESULTS, seconds=1.23456)
    assert summary.lines == [
        "PASS orders: user_id not null — 0 NULLs",
        "FAIL orders: amount_cents not null — 2 NULLs (ids 4, 8)",
        "PASS orders: row count = pre-migration snapshot — 1000 rows = snapshot",
        "FAIL users: row count = pre-migration snapshot — 999 rows with id <= 1200, snapshot 1000 (-1)",
        "FAIL orders: unexpected rows: amount <> amount_cents/100 — 3 rows (ids 17, 42, 99)",
        "PASS orders: id unique (primary key) — no duplicates",
        "FAIL orders: legacy-column checksums = backup — live vs backup: row_count 999 vs 1000, row hashes differ",
        'ERROR orders: unexpected rows: status_v2 <> status — error: column "status_v2" does not exist',
    ]
    assert summary.failed_names == ["orders: amount_cents not null", "users: row count = pre-migration snapshot",
                                    "orders: amount <> amount_cents/100", "orders: legacy-column checksums = backup",
                                    "orders: status_v2 <> status"]
    assert (summary.expectations, summary.failed, summary.seconds, summary.success) == (8, 5, 1.235, False)


def test_save_artifacts_writes_json_and_lines(tmp_path: Path) -> None:
    summary = summarize_validation(RESULTS)
    paths = save_artifacts(RESULTS, tmp_path / "out", summary)
    assert [p.name for p in paths] == ["validation.json", "summary.txt"]  # no HTML for plain dicts
    payload = json.loads(paths[0].read_text())
    assert payload["summary"]["failed"] == 5 and payload["results"][0]["meta"] == {"table": "orders"}
    assert paths[1].read_text().splitlines() == summary.lines
    assert not list((tmp_path / "out").glob("*.partial"))


def test_empty_summary_is_a_success() -> None:
    assert summarize_validation([]) == ValidationSummary(expectations=0, failed=0, seconds=0.0)


def test_artifact_dir_is_per_run_and_filesystem_safe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cutover_kit.stages import database_preparation as database

    monkeypatch.delenv(database.ARTIFACT_ENV, raising=False)
    assert database.artifact_dir_for("manual__2026-11-26T10:00:00+00:00") == (
        REPO_ROOT / ".artifacts" / "gx" / "manual__2026-11-26T10_00_00_00_00")
    monkeypatch.setenv(database.ARTIFACT_ENV, str(tmp_path))
    assert database.artifact_dir_for("../../etc") == tmp_path / "etc"
    assert database.artifact_dir_for(None, base="/x") == Path("/x/manual")


def test_snapshot_from_backup_record() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from cutover_kit.stages import database_preparation as database

    record = {"fingerprints": {
        "users": {"count": 4, "checksum": "a", "max_id": 4, "count_to_max_id": 4},
        "orders": {"count": 21, "checksum": "b", "max_id": 24, "count_to_max_id": 20},  # bound settled below a late row
        "line_items": {"count": 0, "checksum": "c", "max_id": None, "count_to_max_id": 0}}}
    assert database.snapshot_from_backup(record) == {"users": {"count": 4, "max_id": 4},
                                                     "orders": {"count": 20, "max_id": 24},
                                                     "line_items": {"count": 0, "max_id": None}}
    old_record = {"fingerprints": {"users": {"count": 4, "checksum": "a"}, "orders": {"count": 20, "checksum": "b"},
                                   "line_items": {"count": 61, "checksum": "c"}}}  # before max_id was recorded
    assert database.snapshot_from_backup(old_record) == {"users": {"count": 4, "max_id": None},
                                                         "orders": {"count": 20, "max_id": None},
                                                         "line_items": {"count": 61, "max_id": None}}
    with pytest.raises(AirflowFailException, match="no fingerprint for line_items"):
        database.snapshot_from_backup({"fingerprints": {"users": {"count": 1}, "orders": {"count": 1}}})
    # The backup's max ids for the checksum bound, so the comparison copy need not be scanned for them.
    assert database.backup_max_ids_of(record) == {"users": 4, "orders": 24, "line_items": None}
    assert database.backup_max_ids_of(old_record) is None  # read from the copy instead
