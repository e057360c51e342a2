"""Stage 2 expectation suites, per table, as code (GX 1.x, imported only when a suite is built).

What the suites prove about the shared database after the expand migration and its backfill:

* the primary key is unique and the columns the schema declares NOT NULL hold no NULL;
* foreign keys are intact: no orphan rows (an UnexpectedRowsExpectation with a LEFT JOIN, since
  GX has no foreign-key expectation);
* ``orders.status`` holds only the five allowed values;
* the rows that existed at the pre-migration snapshot are all still there and no other row took
  an id among theirs: rows with id <= the snapshot's max_id number exactly its count
  (``{table: {"count", "max_id"}}``, passed in per run). Rows above max_id are the apps' inserts
  since, and allowed;
* every row's new (green) columns equal its legacy (blue) columns: ``amount = amount_cents/100``,
  ``status_v2::text = status``, ``email_normalized = lower(btrim(email))``,
  ``unit_price = unit_price_cents/100``;
* aggregate checksums of the legacy columns equal those of the verified backup (a restored
  scratch database registered as a second GX data source), via ExpectQueryResultsToMatchComparison,
  over the rows with id <= a bound on both sides: the smaller of the snapshot's max_id and the
  backup's max(id) (:func:`checksum_bound`). Legacy columns only, since the backfill and the
  triggers write the new ones.

Why bounds: both apps keep INSERTing during stage 2 (they never update or delete a row through
their APIs), so whole-table counts and checksums would fail on every healthy rehearsal, and a
whole-table count could even pass with one lost row and one new one. Bounded, a lost, duplicated
or changed pre-existing row still fails, and new rows cannot hide it.

Each table gets two suites (:func:`build_suites`), so that every query GX sends is as cheap as it
can be and every result still carries an observed value:

* ``stage_02_<table>_constraints``: GX built-ins (NOT NULL, value set, email uniqueness) run
  BOOLEAN_ONLY: one bundled scan per table. Failures are re-run in detail.
* ``stage_02_<table>_data``: SQL row checks, the bounded row count (``ExpectSnapshotRowCount``:
  one query, one row, observed and expected counts) and the checksum comparison, run COMPLETE. Every row
  check returns **at most one row** (``count(*)`` of the offending rows and their first ids,
  ``HAVING count(*) > 0``), so a defect touching a million rows still sends one row to Python.
  They are ``ExpectNoUnexpectedRows``, an UnexpectedRowsExpectation subclass that runs its query
  once (the stock class runs it twice: ``SELECT COUNT(*) FROM (query)``, then the query itself).
  The primary key's uniqueness is one of them: GROUP BY over the key's index costs ~0.6 s on 3M
  rows where ExpectColumnValuesToBeUnique's window query costs ~1.6 s.

Checksums: per row, the XOR of a typed 64-bit hash of each legacy column (each with its own seed,
so values swapped between rows or columns change it), summed as numeric; plus count(*), sum(id)
and the sums of the integer columns, which make a mismatch readable. Typed hashes avoid rendering
rows as text (three times slower here, and dependent on DateStyle).

Snapshots: :func:`normalize_snapshot` accepts ``{table: {"count", "max_id"}}`` and the old
``{table: count}``; a missing max_id means "no bound" (the count then covers the whole table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from great_expectations import ExpectationSuite
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

TABLES: tuple[str, ...] = ("users", "orders", "line_items")
ORDER_STATUSES: tuple[str, ...] = ("pending", "paid", "shipped", "cancelled", "refunded")
LIVE_SOURCE = "live"
BACKUP_SOURCE = "backup"
SAMPLE_IDS = 10  # ids named per failing check
CONSTRAINTS_RESULT_FORMAT = "BOOLEAN_ONLY"
# For re-running failed constraint expectations: counts plus the ids of the first offending rows.
DETAIL_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_IDS,
                        "unexpected_index_column_names": ["id"]}
DATA_RESULT_FORMAT = "COMPLETE"

# Legacy (Rails) columns with their types: NOT NULL per include/sql/bootstrap/legacy_schema.sql.
# (name, type, not null); the type chooses the hash function of the checksum.
LEGACY_COLUMNS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "users": (("id", "bigint", True), ("email", "text", True), ("name", "text", False),
              ("created_at", "timestamp", True), ("updated_at", "timestamp", True)),
    "orders": (("id", "bigint", True), ("user_id", "bigint", True), ("amount_cents", "integer", True),
               ("status", "text", True), ("created_at", "timestamp", True), ("updated_at", "timestamp", True)),
    "line_items": (("id", "bigint", True), ("order_id", "bigint", True), ("sku", "text", True),
                   ("quantity", "integer", True), ("unit_price_cents", "integer", True),
                   ("created_at", "timestamp", True), ("updated_at", "timestamp", True)),
}
# Sums shown next to the hash in a checksum line (besides count and sum(id)).
CHECKSUM_SUMS: dict[str, tuple[str, ...]] = {
    "users": (),
    "orders": ("user_id", "amount_cents"),
    "line_items": ("order_id", "quantity", "unit_price_cents"),
}
_HASH_FUNCTION = {"bigint": "hashint8extended", "integer": "hashint4extended", "text": "hashtextextended",
                  "timestamp": "timestamp_hash_extended"}


@dataclass(frozen=True)
class RowCheck:
    """A check whose SQL returns the offending rows aggregated into <= 1 row."""

    table: str
    name: str  # shown in the log line, e.g. "amount <> amount_cents/100"
    where: str = ""  # condition that marks a row as offending (columns qualified with t. when joined)
    join: str = ""  # optional LEFT JOIN clause; the checked table is then aliased t
    kind: str = "row_check"
    query: str = ""  # complete SQL instead of where/join

    @property
    def sql(self) -> str:
        return self.query or row_check_sql(self.table, self.where, self.join)


def row_check_sql(table: str, where: str, join: str = "") -> str:
    """SQL of a row check: one row (offending count, first ids) or none.

    GX substitutes ``{batch}`` with the batch as an aliased subquery; with a JOIN it leaves the
    aliasing to us, so join checks name the batch ``t`` and qualify their columns.
    """
    _known(table)
    source, ident = (f"{{batch}} AS t {join}", "t.id") if join else ("{batch}", "id")
    return (f"SELECT count(*) AS unexpected_rows, (array_agg({ident} ORDER BY {ident}))[1:{SAMPLE_IDS}] AS sample_ids "
            f"FROM {source} WHERE {where} HAVING count(*) > 0")


def duplicate_key_sql(table: str, column: str = "id") -> str:
    """Rows sharing a `column` value: one row (rows involved, first duplicated values) or none.

    GROUP BY over the primary key's index-only scan: ~0.6 s for 3M line_items here, against
    ~1.6 s for ExpectColumnValuesToBeUnique's window query (and GX runs that one twice outside
    BOOLEAN_ONLY). Without the key (the defect case) PostgreSQL hashes or sorts instead.
    """
    _known(table)
    return (f"SELECT sum(n) AS unexpected_rows, (array_agg({column} ORDER BY {column}))[1:{SAMPLE_IDS}] AS sample_ids "
            f"FROM (SELECT {column}, count(*) AS n FROM {{batch}} GROUP BY {column} HAVING count(*) > 1) AS dup "
            f"HAVING count(*) > 0")


def row_checks(table: str) -> list[RowCheck]:
    """Primary key, foreign keys and new-shape-equals-old-shape checks of `table`."""
    _known(table)
    key = RowCheck(table, "id unique (primary key)", kind="unique_key", query=duplicate_key_sql(table))
    checks = {
        "users": [
            RowCheck("users", "email_normalized <> lower(btrim(email))",
                     "email_normalized IS DISTINCT FROM lower(btrim(email))"),
        ],
        "orders": [
            RowCheck("orders", "orphan user_id (no such user)", "t.user_id IS NOT NULL AND p.id IS NULL",
                     "LEFT JOIN users AS p ON p.id = t.user_id"),
            RowCheck("orders", "amount <> amount_cents/100", "amount IS DISTINCT FROM amount_cents / 100.0"),
            RowCheck("orders", "status_v2 <> status", "status_v2::text IS DISTINCT FROM status"),
        ],
        "line_items": [
            RowCheck("line_items", "orphan order_id (no such order)", "t.order_id IS NOT NULL AND p.id IS NULL",
                     "LEFT JOIN orders AS p ON p.id = t.order_id"),
            RowCheck("line_items", "unit_price <> unit_price_cents/100",
                     "unit_price IS DISTINCT FROM unit_price_cents / 100.0"),
        ],
    }
    return [key, *checks[table]]


def not_null_columns(table: str) -> tuple[str, ...]:
    _known(table)
    return tuple(name for name, _type, not_null in LEGACY_COLUMNS[table] if not_null)


def checksum_sql(table: str, source: str | None = None, max_id: int | None = None) -> str:
    """One row: row_count, id_sum, <column>_sum..., row_hash_sum over the legacy columns of the
    rows with id <= `max_id` (every row when None).

    `source` is what to read FROM: ``{batch}`` (default) for the live batch, or the table name for
    the comparison data source. Deterministic for the same rows, whatever the session settings.
    """
    _known(table)
    source = source or "{batch}"
    hashes = " # ".join(f"coalesce({_HASH_FUNCTION[kind]}({name}, {seed}), 0)"
                        for seed, (name, kind, _) in enumerate(LEGACY_COLUMNS[table], start=1))
    # Sums as text: exact in JSON (GX turns large numerics into floats, with a warning per value).
    sums = "".join(f", coalesce(sum({column}), 0)::text AS {column}_sum" for column in CHECKSUM_SUMS[table])
    return (f"SELECT count(*) AS row_count, coalesce(sum(id), 0)::text AS id_sum{sums}, "
            f"coalesce(sum({hashes}), 0)::text AS row_hash_sum FROM {source}{_id_bound(max_id)}")


def snapshot_row_count_sql(table: str, count: int, max_id: int | None = None) -> str:
    """One row: observed_rows (rows with id <= max_id, every row when None), expected_rows,
    max_id and new_rows (rows above max_id: the inserts since the snapshot)."""
    _known(table)
    if max_id is None:
        return (f"SELECT count(*) AS observed_rows, {int(count)} AS expected_rows, NULL::bigint AS max_id, "
                f"0 AS new_rows FROM {{batch}}")
    return (f"SELECT count(*) AS observed_rows, {int(count)} AS expected_rows, {int(max_id)}::bigint AS max_id, "
            f"(SELECT count(*) FROM {{batch}} WHERE id > {int(max_id)}) AS new_rows "
            f"FROM {{batch}}{_id_bound(max_id)}")


def _id_bound(max_id: int | None) -> str:
    return "" if max_id is None else f" WHERE id <= {int(max_id)}"


def normalize_snapshot(snapshot: Mapping[str, Any] | None) -> dict[str, dict[str, int | None]] | None:
    """{table: {"count": n, "max_id": m or None}} from either snapshot shape (None stays None)."""
    if snapshot is None:
        return None
    normalized = {}
    for table, entry in snapshot.items():
        if isinstance(entry, Mapping):
            max_id = entry.get("max_id")
            normalized[table] = {"count": int(entry["count"]), "max_id": None if max_id is None else int(max_id)}
        else:  # the old shape: a whole-table count
            normalized[table] = {"count": int(entry), "max_id": None}
    return normalized


def checksum_bound(snapshot_max_id: int | None, backup_max_id: int | None) -> int:
    """Rows compared by the checksums: id <= this on both sides.

    The backup holds no row above its own max(id), and rows above the snapshot's max_id are new
    since the snapshot; the smaller bound covers only rows both sides must hold. An empty backup
    table (max None) bounds at 0: every live row is new.
    """
    backup_bound = 0 if backup_max_id is None else int(backup_max_id)
    return backup_bound if snapshot_max_id is None else min(int(snapshot_max_id), backup_bound)


def max_ids_sql(tables: tuple[str, ...]) -> str:
    """One row, one column per table: its max(id) (NULL when empty); index lookups only."""
    for table in tables:
        _known(table)
    return "SELECT " + ", ".join(f"(SELECT max(id) FROM {table}) AS {table}" for table in tables)


def suite_name(table: str) -> str:
    return f"stage_02_{table}"


# --------------------------------------------------------------------------------------------
# GX objects (great_expectations imported here, at call time)


_ROW_CHECK_CLASS: Any = None
_ROW_COUNT_CLASS: Any = None


def row_check_class() -> Any:
    """ExpectNoUnexpectedRows: an UnexpectedRowsExpectation that runs its query once.

    Its query returns <= 1 row (count + sample ids, see :func:`row_check_sql`); the result carries
    that count as observed_value and the sample ids in details, whatever the result format.
    """
    global _ROW_CHECK_CLASS
    if _ROW_CHECK_CLASS is None:
        from typing import ClassVar

        import great_expectations.expectations as gxe

        class ExpectNoUnexpectedRows(gxe.UnexpectedRowsExpectation):
            metric_dependencies: ClassVar[tuple[str, ...]] = ("unexpected_rows_query.table",)

            def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                          execution_engine: Any = None) -> dict:
                rows = metrics["unexpected_rows_query.table"] or []
                count = int(rows[0].get("unexpected_rows") or 0) if rows else 0
                sample = [int(i) for i in (rows[0].get("sample_ids") or [])] if rows else []
                return {"success": count == 0,
                        "result": {"observed_value": count, "details": {"sample_ids": sample}}}

        _ROW_CHECK_CLASS = ExpectNoUnexpectedRows
    return _ROW_CHECK_CLASS


def snapshot_row_count_class() -> Any:
    """ExpectSnapshotRowCount: one query (:func:`snapshot_row_count_sql`), success when its
    observed_rows equals its expected_rows; the result carries the observed count as
    observed_value and expected_rows, max_id and new_rows in details."""
    global _ROW_COUNT_CLASS
    if _ROW_COUNT_CLASS is None:
        from typing import ClassVar

        import great_expectations.expectations as gxe

        class ExpectSnapshotRowCount(gxe.UnexpectedRowsExpectation):
            metric_dependencies: ClassVar[tuple[str, ...]] = ("unexpected_rows_query.table",)

            def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                          execution_engine: Any = None) -> dict:
                row = (metrics["unexpected_rows_query.table"] or [{}])[0]
                observed, expected = int(row.get("observed_rows") or 0), int(row["expected_rows"])
                max_id = row.get("max_id")
                details = {"expected_rows": expected, "max_id": None if max_id is None else int(max_id),
                           "new_rows": int(row.get("new_rows") or 0)}
                return {"success": observed == expected, "result": {"observed_value": observed, "details": details}}

        _ROW_COUNT_CLASS = ExpectSnapshotRowCount
    return _ROW_COUNT_CLASS


def row_check_expectation(check: RowCheck) -> Any:
    return row_check_class()(unexpected_rows_query=check.sql, description=check.name,
                             meta=_meta(check.table, check.name, check.kind))


def constraint_expectations(table: str) -> list[Any]:
    """NOT NULL and domain expectations of `table` (GX built-ins).

    Run them with :data:`CONSTRAINTS_RESULT_FORMAT` (BOOLEAN_ONLY): GX then computes all NOT NULL
    and set counts of a table in one bundled scan, and skips the per-column "first unexpected
    values" queries (7 extra scans of line_items) that every other format runs even when nothing
    is wrong. Failing ones are re-run with :data:`DETAIL_RESULT_FORMAT` to get their counts and
    the ids of offending rows.
    """
    import great_expectations.expectations as gxe

    _known(table)
    expectations: list[Any] = []
    expectations.extend(
        gxe.ExpectColumnValuesToNotBeNull(column=column, description=f"{column} not null",
                                          meta=_meta(table, f"{column} not null", "not_null"))
        for column in not_null_columns(table))
    if table == "users":
        expectations.append(gxe.ExpectColumnValuesToBeUnique(
            column="email_normalized", description="email_normalized unique",
            meta=_meta(table, "email_normalized unique", "unique")))
    if table == "orders":
        expectations.append(gxe.ExpectColumnValuesToBeInSet(
            column="status", value_set=list(ORDER_STATUSES), description="status in allowed set",
            meta=_meta(table, "status in allowed set", "in_set")))
    return expectations


def snapshot_row_count_expectation(table: str, count: int, max_id: int | None) -> Any:
    """Rows with id <= max_id (every row when None) = the snapshot's count."""
    name = "row count = pre-migration snapshot"
    return snapshot_row_count_class()(
        unexpected_rows_query=snapshot_row_count_sql(table, count, max_id), description=name,
        meta=_meta(table, name, "row_count", expected=int(count), max_id=max_id))


def data_expectations(table: str, backup_source: str | None = BACKUP_SOURCE,
                      snapshot: Mapping[str, Any] | None = None, checksum_max_id: int | None = None) -> list[Any]:
    """Row checks (primary key, foreign keys, new shape = old shape), the row count of the
    snapshot's rows and the checksum comparison with the backup over rows with id <=
    `checksum_max_id` (see :func:`checksum_bound`; None compares whole tables). Every query returns
    at most a row or two, so these run with :data:`DATA_RESULT_FORMAT` (COMPLETE) and their results
    carry the observed values. Without a snapshot entry for `table` the row count is left out,
    without `backup_source` the checksum comparison.
    """
    import great_expectations.expectations as gxe

    _known(table)
    expectations: list[Any] = [row_check_expectation(check) for check in row_checks(table)]
    entry = (normalize_snapshot(snapshot) or {}).get(table)
    if entry is not None:
        expectations.append(snapshot_row_count_expectation(table, entry["count"], entry["max_id"]))
    if backup_source:
        expectations.append(gxe.ExpectQueryResultsToMatchComparison(
            base_query=checksum_sql(table, max_id=checksum_max_id), comparison_data_source_name=backup_source,
            comparison_query=checksum_sql(table, table, checksum_max_id),
            description="legacy-column checksums = backup",
            meta=_meta(table, "legacy-column checksums = backup", "checksum", max_id=checksum_max_id)))
    return expectations


def build_suites(table: str, snapshot: Mapping[str, Any] | None = None,
                 backup_source: str | None = BACKUP_SOURCE,
                 checksum_max_id: int | None = None) -> list[tuple[ExpectationSuite, Any]]:
    """[(suite, result_format)] for `table`: its constraints suite, then its data suite."""
    import great_expectations as gx

    meta = {"table": table, "stage": "2 database preparation"}
    return [
        (gx.ExpectationSuite(name=f"{suite_name(table)}_constraints",
                             expectations=constraint_expectations(table), meta=meta),
         CONSTRAINTS_RESULT_FORMAT),
        (gx.ExpectationSuite(name=f"{suite_name(table)}_data",
                             expectations=data_expectations(table, backup_source, snapshot, checksum_max_id),
                             meta=meta), DATA_RESULT_FORMAT),
    ]


def _meta(table: str, check: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"table": table, "check": check, "kind": kind, **extra}


def engine_kwargs(application_name: str = "cutover-gx") -> dict[str, Any]:
    """create_engine() arguments for both data sources: a connect timeout and a statement timeout,
    so a locked table fails the validation instead of hanging the task."""
    return {"connect_args": {"connect_timeout": 10, "application_name": application_name,
                             "options": "-c statement_timeout=300000"}}


def add_data_sources(context: AbstractDataContext, live_url: str, backup_url: str | None = None,
                     tables: tuple[str, ...] = TABLES) -> dict[str, BatchDefinition]:
    """Register the live database (one whole-table batch definition per table) and, when given,
    the restored backup (for the checksum comparison). Returns {table: BatchDefinition}."""
    live = context.data_sources.add_postgres(name=LIVE_SOURCE, connection_string=live_url, kwargs=engine_kwargs())
    if backup_url:
        context.data_sources.add_postgres(name=BACKUP_SOURCE, connection_string=backup_url,
                                          kwargs=engine_kwargs("cutover-gx-backup"))
    definitions = {}
    for table in tables:
        _known(table)
        asset = live.add_table_asset(name=table, table_name=table)
        definitions[table] = asset.add_batch_definition_whole_table(name=f"{table}_whole_table")
    return definitions


def _known(table: str) -> None:
    if table not in LEGACY_COLUMNS:
        raise ValueError(f"no suite for table {table!r}; known: {', '.join(TABLES)}")
