"""Run the stage-2 Great Expectations suites and turn their results into log lines and artifacts.

No Airflow here, and no great_expectations import at module level (6-9 s, ~230 MB): the functions
that need GX import it when called. The Airflow side lives in ``cutover_kit.stages.database_preparation``.

* :func:`run_validation` registers the live database (and the restored backup, for the checksum
  comparison) in an ephemeral GX context and runs the per-table suites of ``include/gx/suites.py``
  through the provider's own ``load_data_context`` / ``run_validation_definition`` (what
  ``GXValidateBatchOperator.execute`` calls). Constraint suites run BOOLEAN_ONLY (the cheapest SQL);
  the expectations that fail are re-run with counts and offending ids, so a failure still reads well.
* :func:`summarize_validation` gives ONE line per expectation, e.g.
  ``FAIL orders: unexpected rows: amount <> amount_cents/100 — 3 rows (ids 17, 42, 99)`` or
  ``FAIL line_items: row count = pre-migration snapshot — 5999 rows with id <= 6000, snapshot 6000 (-1)``.
* :func:`save_artifacts` writes the results as JSON, the lines as text, and a static Data Docs page
  (rendering it takes well under 0.1 s).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SAMPLE = 10


def silence_gx_import_logs() -> None:
    """Call before importing great_expectations.

    * Each import logs ~214 INFO "Skipping registering function" lines from
      great_expectations._docs_decorators; raising that logger to WARNING silences them (Airflow's
      namespace_levels setting does not).
    * GX's other INFO chatter (metric registry, "Loading 'datasources'", batch slices) would bury
      the one-line-per-expectation log; the ``great_expectations`` logger goes to WARNING too.
    * GX_ANALYTICS_ENABLED defaults to false, so a validation never waits on an analytics endpoint
      (an explicit setting in the environment wins).
    """
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@dataclass(frozen=True)
class ValidationSummary:
    expectations: int
    failed: int
    seconds: float
    lines: list[str] = field(default_factory=list)  # one per expectation, "PASS|FAIL|ERROR table: name — observed"
    failed_names: list[str] = field(default_factory=list)  # "table: name" of every failed expectation

    @property
    def success(self) -> bool:
        return self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        return {"expectations": self.expectations, "failed": self.failed, "seconds": self.seconds,
                "success": self.success, "lines": list(self.lines), "failed_names": list(self.failed_names)}


# --------------------------------------------------------------------------------------------
# Running


def postgres_url(*, host: str, port: int | str | None, login: str | None, password: str | None,
                 database: str) -> str:
    """SQLAlchemy URL for psycopg2, built with proper escaping.

    The provider's build_postgres_connection_string interpolates the fields into an f-string: an
    empty password becomes the literal text "None" and a password with '@' or '/' breaks the URL.
    Here a missing password is simply left out (libpq then uses PGPASSWORD or ~/.pgpass).
    """
    from sqlalchemy.engine import URL

    return URL.create("postgresql+psycopg2", username=login or None, password=password or None,
                      host=host or None, port=int(port) if port else None,
                      database=database).render_as_string(hide_password=False)


def run_validation(live_url: str, *, backup_url: str | None = None, snapshot: Mapping[str, Any] | None = None,
                   tables: Sequence[str] | None = None,
                   backup_max_ids: Mapping[str, int | None] | None = None) -> list[Any]:
    """Validate `tables` (default: users, orders, line_items) of the live database.

    `snapshot` ({table: {"count", "max_id"}} before the migration, or the old {table: count})
    adds the row-count checks of the pre-existing rows; `backup_url` (a restored copy of the
    verified backup) adds the checksum comparisons, over rows with id <= the smaller of the
    snapshot's max_id and the backup's max(id): `backup_max_ids` ({table: max id}, e.g. the
    backup record's fingerprints) when given for every table, else read from the copy. Returns
    one ExpectationSuiteValidationResult per suite run (constraints, then data, per table).
    """
    silence_gx_import_logs()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations_provider.common.gx_context_actions import load_data_context, run_validation_definition

    from include.gx import suites

    tables = tuple(tables or suites.TABLES)
    snapshot = suites.normalize_snapshot(snapshot)
    checksum_bounds: dict[str, int | None] = {table: None for table in tables}
    if backup_url:
        # Known from the backup record (its fingerprints' max_id, the bound the dump was settled
        # at) or else read from the copy: max(id) there is a scan, since the comparison copy has
        # no primary key index.
        backup_max = ({table: backup_max_ids.get(table) for table in tables}
                      if backup_max_ids is not None and all(table in backup_max_ids for table in tables)
                      else _max_ids(backup_url, tables))
        checksum_bounds = {table: suites.checksum_bound((snapshot or {}).get(table, {}).get("max_id"),
                                                        backup_max[table]) for table in tables}
    context = load_data_context(context_type="ephemeral", gx_cloud_config=None)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bars in task logs
    definitions = suites.add_data_sources(context, live_url, backup_url, tables=tables)
    results = []
    for table in tables:
        for suite, result_format in suites.build_suites(table, snapshot, suites.BACKUP_SOURCE if backup_url else None,
                                                        checksum_bounds[table]):
            result = run_validation_definition(task_id=suite.name, expect=suite, batch_definition=definitions[table],
                                               result_format=result_format, batch_parameters={}, gx_context=context)
            failed = [r.expectation_config for r in result.results if not r.success]
            if failed and result_format == suites.CONSTRAINTS_RESULT_FORMAT:
                # Only failures pay for the detail queries: counts and the ids of offending rows.
                detail_suite = gx.ExpectationSuite(name=f"{suite.name}_failures", meta=suite.meta,
                                                   expectations=[_expectation_from_config(c) for c in failed])
                detail = run_validation_definition(task_id=detail_suite.name, expect=detail_suite,
                                                   batch_definition=definitions[table],
                                                   result_format=suites.DETAIL_RESULT_FORMAT, batch_parameters={},
                                                   gx_context=context)
                by_check = {_check_of(r): r for r in detail.results}
                result.results = [by_check.get(_check_of(r), r) if not r.success else r for r in result.results]
            results.append(result)
    return results


def _max_ids(url: str, tables: tuple[str, ...]) -> dict[str, int | None]:
    """{table: max(id)} of the database at `url` (one query, index lookups)."""
    import sqlalchemy

    from include.gx import suites

    engine = sqlalchemy.create_engine(url, **suites.engine_kwargs("cutover-gx-bounds"))
    try:
        with engine.connect() as conn:
            row = conn.execute(sqlalchemy.text(suites.max_ids_sql(tables))).mappings().one()
    finally:
        engine.dispose()
    return {table: row[table] for table in tables}


def _check_of(expectation_result: Any) -> str:
    return (expectation_result.expectation_config.meta or {}).get("check", "")


def _expectation_from_config(config: Any) -> Any:
    expectation = config.to_domain_obj()
    expectation.id = None  # a fresh suite assigns its own ids; the config keeps the original one
    return expectation


# --------------------------------------------------------------------------------------------
# Summarising


def summarize_validation(result: Any, seconds: float | None = None) -> ValidationSummary:
    """One readable line per expectation of `result` (a suite validation result, its dict, or a list
    of either), in run order. `seconds` defaults to 0 when not given."""
    lines, failed_names = [], []
    total = 0
    for evr in _expectation_results(result):
        total += 1
        table, name, kind = _identify(evr)
        ok = bool(evr.get("success"))
        errored = bool((evr.get("exception_info") or {}).get("raised_exception")) or _has_nested_exception(evr)
        status = "PASS" if ok else ("ERROR" if errored else "FAIL")
        label = f"unexpected rows: {name}" if kind == "row_check" else name
        observed = _exception_text(evr) if errored and not ok else _observed(kind, ok, evr)
        lines.append(f"{status} {table}: {label} — {observed}")
        if not ok:
            failed_names.append(f"{table}: {name}")
    return ValidationSummary(expectations=total, failed=len(failed_names), seconds=round(seconds or 0.0, 3),
                             lines=lines, failed_names=failed_names)


def _as_dict(result: Any) -> dict[str, Any]:
    if isinstance(result, Mapping):
        return dict(result)
    return result.to_json_dict()


def _expectation_results(result: Any) -> Iterable[dict[str, Any]]:
    items = result if isinstance(result, (list, tuple)) else [result]
    for item in items:
        suite = _as_dict(item)
        suite_table = (suite.get("meta") or {}).get("table") or ""
        for evr in suite.get("results") or []:
            evr = dict(evr)
            evr.setdefault("_suite_table", suite_table)
            yield evr


def _identify(evr: Mapping[str, Any]) -> tuple[str, str, str]:
    config = evr.get("expectation_config") or {}
    meta = config.get("meta") or {}
    kwargs = config.get("kwargs") or {}
    kind = meta.get("kind") or ""
    name = meta.get("check") or config.get("description") or _default_name(config.get("type", "?"), kwargs)
    table = meta.get("table") or evr.get("_suite_table") or "?"
    return table, name, kind


def _default_name(expectation_type: str, kwargs: Mapping[str, Any]) -> str:
    column = kwargs.get("column")
    return f"{expectation_type}({column})" if column else expectation_type


def _observed(kind: str, ok: bool, evr: Mapping[str, Any]) -> str:
    result = evr.get("result") or {}
    meta = (evr.get("expectation_config") or {}).get("meta") or {}
    count = result.get("unexpected_count")
    if kind in ("row_check", "unique_key") or (kind in ("not_null", "in_set") and "observed_value" in result):
        # ExpectNoUnexpectedRows: the count of offending rows, their first ids (and values).
        rows = int(result.get("observed_value") or 0)
        details = result.get("details") or {}
        ids = details.get("sample_ids")
        if kind == "unique_key":
            return "no duplicates" if not rows else f"{_rows(rows)} share an id{_ids(ids)}"
        if kind == "not_null":
            return f"{rows} NULL{'s' if rows != 1 else ''}{_ids(ids) if rows else ''}"
        if kind == "in_set":
            if not rows:
                return "0 rows outside the set"
            values = sorted({repr(v) for v in details.get("values") or []})[:_SAMPLE]
            return f"{_rows(rows)} outside the set ({', '.join(values)}){_ids(ids)}"
        return f"{_rows(rows)}{_ids(ids)}"
    if kind == "row_count":
        details = result.get("details") or {}
        observed, expected = result.get("observed_value"), details.get("expected_rows", meta.get("expected"))
        max_id = details.get("max_id", meta.get("max_id"))
        rows = f"rows with id <= {max_id}" if max_id is not None else "rows"
        if observed is None:  # no observed value (BOOLEAN_ONLY): success means equal
            return f"{expected} {rows} = snapshot" if ok else f"{rows} differ from snapshot {expected}"
        if observed == expected:
            new = details.get("new_rows")
            newer = f", {new} newer" if max_id is not None and new is not None else ""
            return f"{observed} {rows} = snapshot{newer}"
        return f"{observed} {rows}, snapshot {expected} ({int(observed) - int(expected):+d})"
    if kind == "checksum":
        return _checksum_observed(ok, result, meta.get("max_id"))
    if kind in ("unique", "not_null", "in_set"):
        if ok and count in (None, 0):
            return {"unique": "no duplicates", "not_null": "0 NULLs", "in_set": "0 rows outside the set"}[kind]
        if count is None:
            return "failed"
        ids = _ids([row.get("id") for row in result.get("partial_unexpected_index_list") or []
                    if isinstance(row, Mapping)])
        if kind == "unique":
            return f"{_rows(count)} share a value{ids}"
        if kind == "not_null":
            return f"{count} NULL{'s' if count != 1 else ''}{ids}"
        values = sorted({repr(v) for v in result.get("partial_unexpected_list") or []})[:_SAMPLE]
        return f"{_rows(count)} outside the set ({', '.join(values)}){ids}"
    # Anything else: GX's own observed value or unexpected count.
    if "observed_value" in result:
        return f"observed {result['observed_value']}"
    if count is not None:
        return f"{count} unexpected"
    return "ok" if ok else "failed"


def _checksum_observed(ok: bool, result: Mapping[str, Any], max_id: int | None = None) -> str:
    details = result.get("details") or {}
    live, backup = details.get("unexpected_rows") or [], details.get("missing_rows") or []
    scope = f" (ids <= {max_id})" if max_id is not None else ""
    if ok:
        return f"live = backup{scope}"
    if len(live) == 1 and len(backup) == 1:
        differing = [f"{key} {live[0].get(key)} vs {backup[0].get(key)}" for key in backup[0]
                     if live[0].get(key) != backup[0].get(key) and key != "row_hash_sum"]
        if live[0].get("row_hash_sum") != backup[0].get("row_hash_sum"):
            differing.append("row hashes differ")
        return f"live vs backup{scope}: " + ", ".join(differing)
    return f"{result.get('unexpected_count', '?')} aggregate rows differ{scope} (live {live}, backup {backup})"


def _has_nested_exception(evr: Mapping[str, Any]) -> bool:
    info = evr.get("exception_info") or {}
    return any(isinstance(v, Mapping) and v.get("raised_exception") for v in info.values())


def _exception_text(evr: Mapping[str, Any]) -> str:
    info = evr.get("exception_info") or {}
    messages = [info.get("exception_message")] + [v.get("exception_message") for v in info.values()
                                                   if isinstance(v, Mapping)]
    message = next((m for m in messages if m), "raised an exception")
    return "error: " + " ".join(str(message).split())[:300]


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def _ids(ids: Iterable[Any] | None) -> str:
    shown = [str(i) for i in (ids or []) if i is not None][:_SAMPLE]
    return f" (ids {', '.join(shown)})" if shown else ""


# --------------------------------------------------------------------------------------------
# Artifacts


def save_artifacts(result: Any, out_dir: Path | str, summary: ValidationSummary | None = None,
                   html: bool = True) -> list[Path]:
    """Write `validation.json` (every suite result), `summary.txt` (the lines) and, when `html`,
    `validation.html` (GX's Data Docs page for the results). Returns the paths written."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    results = result if isinstance(result, (list, tuple)) else [result]
    summary = summary or summarize_validation(results)
    written = []
    payload = {"summary": summary.as_dict(), "results": [_as_dict(item) for item in results]}
    json_path = directory / "validation.json"
    _write_atomically(json_path, json.dumps(payload, indent=1, default=str, sort_keys=False))
    written.append(json_path)
    text_path = directory / "summary.txt"
    _write_atomically(text_path, "\n".join(summary.lines) + "\n")
    written.append(text_path)
    if html and results and not isinstance(results[0], Mapping):
        page = _render_html(results)
        if page:
            html_path = directory / "validation.html"
            _write_atomically(html_path, page)
            written.append(html_path)
    return written


def _render_html(results: Sequence[Any]) -> str | None:
    """Data Docs HTML for the results (best effort: a rendering problem must not fail a validation)."""
    try:
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        with _quiet("great_expectations.render"):
            pages = [DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(item)) for item in results]
    except Exception as error:  # noqa: BLE001 - optional artifact
        log.warning("Data Docs page not written: %s", error)
        return None
    bodies = [re.sub(r"(?s).*<body[^>]*>(.*)</body>.*", r"\1", page) for page in pages[1:]]
    return pages[0].replace("</body>", "\n".join(bodies) + "</body>", 1) if bodies else pages[0]


@contextmanager
def _quiet(name: str):
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def timed_validation(live_url: str, **kwargs: Any) -> tuple[list[Any], ValidationSummary]:
    """run_validation + summarize_validation, timing the run. The GX import (2 to 13 s here, once
    per process whatever the data) is logged apart and not in the summary's seconds."""
    imported = time.monotonic()
    silence_gx_import_logs()
    import great_expectations  # noqa: F401 - imported here so that the timing below is the validation's

    log.info("great_expectations imported in %.1f s", time.monotonic() - imported)
    started = time.monotonic()
    results = run_validation(live_url, **kwargs)
    return results, summarize_validation(results, seconds=time.monotonic() - started)
