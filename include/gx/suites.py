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

Queries, per table (:func:`data_expectations`): every check stays one expectation with its own
log line, but checks that read the same rows share one pass over them. Measured on 1M orders /
3M line_items (BENCHMARKS.md): a separate query per check scanned line_items seven times.

* **The table scan** (:func:`table_scan_sql`): one ``SELECT count(*) FILTER (WHERE ...)`` per
  check over the table, in one pass: NOT NULL per legacy column, the status set, new shape = old
  shape, and the bounded row count. Plain counts keep the scan parallel; the first offending ids
  (and values) are fetched by subqueries that run only for a check that found rows. Each of these
  expectations (``ExpectNoUnexpectedRows`` / ``ExpectSnapshotRowCount``, UnexpectedRowsExpectation
  subclasses) carries the same query and reads its own columns of the one result row; GX resolves
  a metric once per distinct query, so the scan runs once per table.
* **The primary key**, in the same statement: count(*) of the scan minus the count of
  ``SELECT DISTINCT id`` (an index-only scan of the key; 2/3 of the time of GROUP BY ... HAVING,
  a fraction of ExpectColumnValuesToBeUnique's window query).
* **Each foreign key**: an anti-join (LEFT JOIN ... IS NULL; GX has no foreign-key expectation)
  counted with a plain count(*), ids fetched only when orphans exist.
* **The checksums** on both sides (ExpectQueryResultsToMatchComparison).
* ``users`` keeps one GX built-in, ExpectColumnValuesToBeUnique on email_normalized, in a
  ``stage_02_users_constraints`` suite run BOOLEAN_ONLY (failures re-run in detail).

Every query returns at most one row, so a defect touching a million rows still sends one row to
Python. The GX sessions run with ``jit = off`` (compiling costs more than it saves on these
one-pass aggregates: the line_items checksum took 0.76-0.91 s with JIT, 0.54-0.65 s without)
and ``enable_hashjoin = off``: each foreign key check is then a merge anti-join of the child's
foreign-key index and the parent's primary key, two index-only scans read once in order, instead
of a hash of the parent's ids probed by every child row (line_items: 0.7-0.8 s instead of 1.8-2.2 s,
orders: 0.2-0.3 s instead of 1.0 s, at load 5). It needs the index on the foreign key column
(Rails creates one per reference) and a vacuumed table (stage 2 vacuums after the backfill).
``work_mem = 64MB`` keeps any hash or sort of a million ids in memory. See :func:`engine_kwargs`.

Checksums: per row, the XOR of a typed 64-bit hash of each legacy column (each with its own seed,
so values swapped between rows or columns change it), summed as numeric; plus count(*), sum(id)
and the sums of the integer columns, which make a mismatch readable. Typed hashes avoid rendering
rows as text (three times slower here, and dependent on DateStyle).

Snapshots: :func:`normalize_snapshot` accepts ``{table: {"count", "max_id"}}`` and the old
``{table: count}``; a missing max_id means "no bound" (the count then covers the whole table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
# Session settings of the GX connections (why: module docstring, "Queries"). Session-level, so
# they change nothing for the apps or for a production server's configuration.
SESSION_SETTINGS: dict[str, str] = {"statement_timeout": "300000", "jit": "off", "work_mem": "64MB",
                                    "enable_hashjoin": "off"}

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
    """A check that counts the rows of `table` matching a condition (offending rows).

    Without `join` or `query` it is a *scan check*: folded with the table's other scan checks into
    one pass over the table (:func:`table_scan_sql`), where `key` names its columns
    (``<key>_rows``, ``<key>_ids`` and, with `values`, ``<key>_values``). Otherwise it runs as a
    query of its own (:attr:`sql`).
    """

    table: str
    name: str  # shown in the log line, e.g. "amount <> amount_cents/100"
    where: str = ""  # condition that marks a row as offending (columns qualified with t. when joined)
    join: str = ""  # optional LEFT JOIN clause; the checked table is then aliased t
    kind: str = "row_check"
    query: str = ""  # complete SQL instead of where/join
    key: str = ""  # scan checks: prefix of its columns in the table scan
    values: str = ""  # scan checks: a column whose offending values are sampled too (in_set), or the
    # column that must be unique (unique_key)

    @property
    def scanned(self) -> bool:
        return not (self.query or self.join)

    @property
    def sql(self) -> str:
        """The check as a query of its own: one row (offending count, first ids) or none."""
        return self.query or row_check_sql(self.table, self.where, self.join)


def row_check_sql(table: str, where: str, join: str = "") -> str:
    """SQL of a row check: one row (offending count, first ids) or none.

    The count is a plain count(*), so PostgreSQL can run it as a parallel scan or join (an
    ordered array_agg cannot be split across workers); the ids are fetched by a second, ordered
    subquery only when the count is not 0 (an InitPlan runs when first referenced, and the CASE
    references it only then). GX substitutes ``{batch}`` with the batch as an aliased subquery;
    with a JOIN it leaves the aliasing to us, so join checks name the batch ``t`` and qualify
    their columns.
    """
    _known(table)
    source, ident = (f"{{batch}} AS t {join}", "t.id") if join else ("{batch}", "id")
    return (f"SELECT found.unexpected_rows, CASE WHEN found.unexpected_rows > 0 THEN "
            f"ARRAY(SELECT {ident} FROM {source} WHERE {where} ORDER BY {ident} LIMIT {SAMPLE_IDS}) END AS sample_ids "
            f"FROM (SELECT count(*) AS unexpected_rows FROM {source} WHERE {where}) AS found "
            f"WHERE found.unexpected_rows > 0")


# New (green) columns that must equal the legacy (blue) ones, per table: (key, name, offending rows).
_SHAPE_CHECKS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "users": (("email_normalized_mismatch", "email_normalized <> lower(btrim(email))",
               "email_normalized IS DISTINCT FROM lower(btrim(email))"),),
    "orders": (("amount_mismatch", "amount <> amount_cents/100", "amount IS DISTINCT FROM amount_cents / 100.0"),
               ("status_v2_mismatch", "status_v2 <> status", "status_v2::text IS DISTINCT FROM status")),
    "line_items": (("unit_price_mismatch", "unit_price <> unit_price_cents/100",
                    "unit_price IS DISTINCT FROM unit_price_cents / 100.0"),),
}
# Foreign keys: (column, parent table).
_FOREIGN_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "users": (), "orders": (("user_id", "users"),), "line_items": (("order_id", "orders"),),
}


def row_checks(table: str) -> list[RowCheck]:
    """Every row-level check of `table`, in log order: NOT NULL per legacy column, the status set
    (orders), the primary key, foreign keys, then new shape = old shape. All but the foreign keys
    are scan checks (:func:`table_scan_sql`)."""
    _known(table)
    checks = [RowCheck(table, f"{column} not null", f"{column} IS NULL", kind="not_null", key=f"{column}_null")
              for column in not_null_columns(table)]
    if table == "orders":
        allowed = ", ".join(f"'{status}'" for status in ORDER_STATUSES)
        # NULL is the NOT NULL check's business (as in ExpectColumnValuesToBeInSet).
        checks.append(RowCheck(table, "status in allowed set", f"status IS NOT NULL AND status NOT IN ({allowed})",
                               kind="in_set", key="status_outside_set", values="status"))
    checks.append(RowCheck(table, "id unique (primary key)", kind="unique_key", key="duplicate_id", values="id"))
    checks.extend(RowCheck(table, f"orphan {column} (no such {parent.removesuffix('s')})",
                           f"t.{column} IS NOT NULL AND p.id IS NULL", f"LEFT JOIN {parent} AS p ON p.id = t.{column}")
                  for column, parent in _FOREIGN_KEYS[table])
    checks.extend(RowCheck(table, name, where, key=key) for key, name, where in _SHAPE_CHECKS[table])
    return checks


def table_scan_sql(table: str, checks: Sequence[RowCheck], row_count: Mapping[str, Any] | None = None) -> str:
    """ONE pass over `table` for all its scan checks (and the snapshot row count): one row.

    Columns: ``<key>_rows`` per check (parallel-safe count(*) FILTER aggregates), then
    ``<key>_ids`` (first offending ids) and ``<key>_values`` (first offending values), each
    fetched by its own subquery only when that check found rows. The primary key's check
    (``unique_key``) counts the rows beyond one per id instead (``<key>_extra``: count(*) minus
    the distinct ids, one more pass over the key's index), then the rows sharing an id
    (``<key>_rows``) and the first duplicated ids only when there are any. With `row_count`
    ({"count", "max_id"}), also observed_rows (rows with id <= max_id; every row when max_id is
    None), expected_rows (the snapshot's count), max_id and new_rows (rows above max_id: the
    inserts since the snapshot). Each expectation of the table reads its own columns of this
    row; GX runs a query shared by several expectations once (one metric).
    """
    _known(table)
    scanned = [check for check in checks if check.scanned]
    if any(check.table != table or not check.key for check in scanned):
        raise ValueError(f"scan checks of {table} need a key and the same table")
    counts, samples = [], []
    for check in scanned:
        if check.kind == "unique_key":
            # Rows beyond one per value: count(*) minus the values' count. DISTINCT over the key's
            # index-only scan costs ~2/3 of GROUP BY ... HAVING count(*) > 1 (3M rows: 1.5 vs 2.4 s
            # at load 13); the rows involved and their values are counted only when it is not 0.
            column = check.values
            counts.append(f"count(*) - (SELECT count(*) FROM (SELECT DISTINCT {column} FROM {{batch}}) AS u) "
                          f"AS {check.key}_extra")
            duplicated = f"SELECT {column}, count(*) AS n FROM {{batch}} GROUP BY {column} HAVING count(*) > 1"
            samples.append(f"CASE WHEN scan.{check.key}_extra > 0 THEN (SELECT sum(n) FROM ({duplicated}) AS dup) "
                           f"END AS {check.key}_rows")
            samples.append(f"CASE WHEN scan.{check.key}_extra > 0 THEN ARRAY(SELECT {column} FROM ({duplicated}) AS dup "
                           f"ORDER BY {column} LIMIT {SAMPLE_IDS}) END AS {check.key}_ids")
        else:
            counts.append(f"count(*) FILTER (WHERE {check.where}) AS {check.key}_rows")
    if row_count is not None:
        counts.append(_row_count_columns(int(row_count["count"]), row_count.get("max_id")))
    for check in scanned:
        if check.kind == "unique_key":
            continue
        found = f"scan.{check.key}_rows > 0"
        samples.append(f"CASE WHEN {found} THEN ARRAY(SELECT id FROM {{batch}} WHERE {check.where} "
                       f"ORDER BY id LIMIT {SAMPLE_IDS}) END AS {check.key}_ids")
        if check.values:
            samples.append(f"CASE WHEN {found} THEN ARRAY(SELECT DISTINCT {check.values}::text FROM {{batch}} "
                           f"WHERE {check.where} ORDER BY 1 LIMIT {SAMPLE_IDS}) END AS {check.key}_values")
    return f"SELECT {', '.join(['scan.*', *samples])} FROM (SELECT {', '.join(counts)} FROM {{batch}}) AS scan"


def _row_count_columns(count: int, max_id: int | None) -> str:
    if max_id is None:
        return f"count(*) AS observed_rows, {count} AS expected_rows, NULL::bigint AS max_id, 0 AS new_rows"
    return (f"count(*) FILTER (WHERE id <= {int(max_id)}) AS observed_rows, {count} AS expected_rows, "
            f"{int(max_id)}::bigint AS max_id, count(*) FILTER (WHERE id > {int(max_id)}) AS new_rows")


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
    """ExpectNoUnexpectedRows: an UnexpectedRowsExpectation that runs its query once and reads
    one check's columns from its (single) result row.

    `count_column` / `ids_column` (and `values_column`) name the columns of that row: a check
    with a query of its own reads ``unexpected_rows`` / ``sample_ids`` (:func:`row_check_sql`);
    a scan check reads ``<key>_rows`` / ``<key>_ids`` of its table's scan (:func:`table_scan_sql`),
    which every scan check of the table shares. GX computes a metric once per distinct query, so
    the scan runs once however many expectations read it. The result carries the count as
    observed_value and the sample ids (and values) in details, whatever the result format.
    """
    global _ROW_CHECK_CLASS
    if _ROW_CHECK_CLASS is None:
        from typing import ClassVar

        import great_expectations.expectations as gxe

        class ExpectNoUnexpectedRows(gxe.UnexpectedRowsExpectation):
            metric_dependencies: ClassVar[tuple[str, ...]] = ("unexpected_rows_query.table",)
            count_column: str = "unexpected_rows"
            ids_column: str = "sample_ids"
            values_column: str = ""  # none

            def _validate(self, metrics: dict, runtime_configuration: dict | None = None,
                          execution_engine: Any = None) -> dict:
                row = (metrics["unexpected_rows_query.table"] or [{}])[0]
                count = int(row.get(self.count_column) or 0)
                details: dict[str, Any] = {
                    "sample_ids": [int(i) for i in (row.get(self.ids_column) or []) if i is not None]}
                if self.values_column:
                    details["values"] = list(row.get(self.values_column) or [])
                return {"success": count == 0, "result": {"observed_value": count, "details": details}}

        _ROW_CHECK_CLASS = ExpectNoUnexpectedRows
    return _ROW_CHECK_CLASS


def snapshot_row_count_class() -> Any:
    """ExpectSnapshotRowCount: success when the observed_rows of its query's row equal its
    expected_rows (the table scan's columns, :func:`table_scan_sql`); the result carries the
    observed count as observed_value and expected_rows, max_id and new_rows in details."""
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


def row_check_expectation(check: RowCheck, scan_sql: str | None = None) -> Any:
    """The expectation of `check`: reading its columns of `scan_sql` for a scan check, else
    running its own query."""
    meta = _meta(check.table, check.name, check.kind)
    if not check.scanned:
        return row_check_class()(unexpected_rows_query=check.sql, description=check.name, meta=meta)
    if scan_sql is None:
        raise ValueError(f"{check.table}: {check.name} is a scan check: pass the table's scan query")
    return row_check_class()(unexpected_rows_query=scan_sql, description=check.name, meta=meta,
                             count_column=f"{check.key}_rows", ids_column=f"{check.key}_ids",
                             values_column=f"{check.key}_values" if check.values and check.kind != "unique_key" else "")


def constraint_expectations(table: str) -> list[Any]:
    """GX built-in expectations of `table`: email_normalized unique (users).

    Run them with :data:`CONSTRAINTS_RESULT_FORMAT` (BOOLEAN_ONLY): GX then skips the "first
    unexpected values" queries that every other format runs even when nothing is wrong. Failing
    ones are re-run with :data:`DETAIL_RESULT_FORMAT` to get their counts and the ids of
    offending rows. (NOT NULL and the status set used to be built-ins here too: each cost a
    scan of its own plus GX's table.row_count scan; they are scan checks now.)
    """
    import great_expectations.expectations as gxe

    _known(table)
    if table != "users":
        return []
    return [gxe.ExpectColumnValuesToBeUnique(column="email_normalized", description="email_normalized unique",
                                             meta=_meta(table, "email_normalized unique", "unique"))]


def snapshot_row_count_expectation(table: str, count: int, max_id: int | None, scan_sql: str | None = None) -> Any:
    """Rows with id <= max_id (every row when None) = the snapshot's count, read from the table
    scan (`scan_sql`; by default a scan with no other check)."""
    name = "row count = pre-migration snapshot"
    query = scan_sql or table_scan_sql(table, [], {"count": count, "max_id": max_id})
    return snapshot_row_count_class()(
        unexpected_rows_query=query, description=name,
        meta=_meta(table, name, "row_count", expected=int(count), max_id=max_id))


def data_expectations(table: str, backup_source: str | None = BACKUP_SOURCE,
                      snapshot: Mapping[str, Any] | None = None, checksum_max_id: int | None = None) -> list[Any]:
    """Row checks (NOT NULL, status set, primary key, foreign keys, new shape = old shape), the
    row count of the snapshot's rows and the checksum comparison with the backup over rows with
    id <= `checksum_max_id` (see :func:`checksum_bound`; None compares whole tables).

    Queries: one scan of the table for every scan check and the row count
    (:func:`table_scan_sql`), one GROUP BY for the primary key, one anti-join per foreign key,
    and the checksum on each side. Every query returns at most a row or two, so these run with
    :data:`DATA_RESULT_FORMAT` (COMPLETE) and their results carry the observed values. Without
    a snapshot entry for `table` the row count is left out, without `backup_source` the checksum
    comparison.
    """
    import great_expectations.expectations as gxe

    _known(table)
    checks = row_checks(table)
    entry = (normalize_snapshot(snapshot) or {}).get(table)
    scan_sql = table_scan_sql(table, checks, entry)
    expectations: list[Any] = [row_check_expectation(check, scan_sql) for check in checks]
    if entry is not None:
        expectations.append(snapshot_row_count_expectation(table, entry["count"], entry["max_id"], scan_sql))
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
    """[(suite, result_format)] for `table`: its constraints suite (GX built-ins; only when it
    has any), then its data suite."""
    import great_expectations as gx

    meta = {"table": table, "stage": "2 database preparation"}
    suites: list[tuple[ExpectationSuite, Any]] = []
    constraints = constraint_expectations(table)
    if constraints:
        suites.append((gx.ExpectationSuite(name=f"{suite_name(table)}_constraints", expectations=constraints,
                                           meta=meta), CONSTRAINTS_RESULT_FORMAT))
    suites.append((gx.ExpectationSuite(name=f"{suite_name(table)}_data",
                                       expectations=data_expectations(table, backup_source, snapshot, checksum_max_id),
                                       meta=meta), DATA_RESULT_FORMAT))
    return suites


def _meta(table: str, check: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"table": table, "check": check, "kind": kind, **extra}


def engine_kwargs(application_name: str = "cutover-gx") -> dict[str, Any]:
    """create_engine() arguments for both data sources: a connect timeout, and the session
    settings of :data:`SESSION_SETTINGS` (a statement timeout, so a locked table fails the
    validation instead of hanging the task; jit off; merge anti-joins for the foreign keys)."""
    return {"connect_args": {"connect_timeout": 10, "application_name": application_name,
                             "options": " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items())}}


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
