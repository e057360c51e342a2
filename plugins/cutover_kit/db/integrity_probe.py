"""The SLO gate's integrity probe, database side (no Airflow): what :func:`cutover_kit.integrity.judge_integrity`
judges, read with a bounded cost on every gate poll.

Every query touches only the rows written since the step began, through primary-key ranges:

- :func:`find_watermarks` (once per gate): per table, the id of the newest row created before
  the step began: a backward scan of the primary key that stops at the first older row, so it
  reads only the step's rows (created_at has no index and needs none). A restarted trigger finds
  the same watermarks again from the same start time.
- :func:`read_snapshot` (every poll): per table ``id > watermark`` with the disagreement
  predicate, LIMIT-ed; the count of the step's rows; and the acknowledged ids above the orders
  watermark looked up by primary key.

One short read-only transaction per poll. Timestamps are compared in UTC, as both apps write
them (timestamp without time zone holding UTC).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from cutover_kit.db.schema_versions import EXPAND_VERSION
from cutover_kit.integrity import AGREEMENT, DISAGREEMENT_SAMPLE, LEDGER_TABLE, Disagreement, IntegritySnapshot

STATEMENT_TIMEOUT_MS = 2000  # a probe that slow would hold the gate's poll: fail it, the poll is INCONCLUSIVE


class IntegrityProbeError(RuntimeError):
    """The probe could not read the database; the message says which step failed."""


def connect(dsn: str) -> psycopg2.extensions.connection:
    try:
        conn = psycopg2.connect(dsn, connect_timeout=3, application_name="cutover-integrity-probe",
                                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c TimeZone=UTC")
    except psycopg2.Error as error:
        raise IntegrityProbeError(f"cannot connect to the database: {str(error).strip()}") from error
    conn.set_session(readonly=True, autocommit=False)
    return conn


def expanded(conn: psycopg2.extensions.connection) -> bool:
    """True when the expand migration is applied (its new columns exist to compare)."""
    with conn.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = %s)", (EXPAND_VERSION,))
        return bool(cur.fetchone()[0])


def find_watermarks(conn: psycopg2.extensions.connection, since_epoch: float) -> dict[str, int]:
    """Per table, the highest id created before `since_epoch` (0 when none)."""
    watermarks = {}
    try:
        with conn, conn.cursor() as cur:
            for table in AGREEMENT:
                cur.execute(sql.SQL(
                    "SELECT coalesce((SELECT id FROM {} WHERE created_at < to_timestamp(%s) AT TIME ZONE 'UTC' "
                    "ORDER BY id DESC LIMIT 1), 0)").format(sql.Identifier(table)), (since_epoch,))
                watermarks[table] = int(cur.fetchone()[0])
    except psycopg2.Error as error:
        raise IntegrityProbeError(f"finding the step's first rows failed: {str(error).strip()}") from error
    return watermarks


def read_snapshot(conn: psycopg2.extensions.connection, watermarks: Mapping[str, int],
                  acknowledged: Sequence[int] | None, compare_columns: bool = True) -> IntegritySnapshot:
    """One probe: disagreeing rows and row counts since the watermarks, and which of the
    `acknowledged` ids (already those above the orders watermark; None: no ledger) are missing."""
    started = time.monotonic()
    disagreements: list[Disagreement] = []
    rows_checked: dict[str, int] = {}
    missing: list[int] = []
    try:
        with conn, conn.cursor() as cur:
            for table, pairs in AGREEMENT.items():
                table_id = sql.Identifier(table)
                cur.execute(sql.SQL("SELECT count(*) FROM {} WHERE id > %s").format(table_id), (watermarks[table],))
                rows_checked[table] = int(cur.fetchone()[0])
                if not compare_columns or not rows_checked[table]:
                    continue
                columns = [column for pair in pairs for column in (pair.old, pair.new)]
                predicate = sql.SQL(" OR ").join(sql.SQL("(" + pair.disagree_sql + ")") for pair in pairs)
                cur.execute(sql.SQL("SELECT id, {} FROM {} WHERE id > %s AND ({}) ORDER BY id LIMIT %s").format(
                    sql.SQL(", ").join(sql.Identifier(column) for column in columns), table_id, predicate),
                    (watermarks[table], DISAGREEMENT_SAMPLE))
                for row in cur.fetchall():
                    disagreements.append(Disagreement(table, int(row[0]), dict(zip(columns, row[1:]))))
            if acknowledged:
                cur.execute(sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(sql.Identifier(LEDGER_TABLE)),
                            (list(acknowledged),))
                present = {int(row[0]) for row in cur.fetchall()}
                missing = [order_id for order_id in acknowledged if order_id not in present]
    except psycopg2.Error as error:
        raise IntegrityProbeError(f"reading the step's rows failed: {str(error).strip()}") from error
    return IntegritySnapshot(
        watermarks=dict(watermarks), rows_checked=rows_checked, disagreements=tuple(disagreements),
        acknowledged=None if acknowledged is None else len(acknowledged), missing=tuple(missing),
        expanded=compare_columns, seconds=round(time.monotonic() - started, 4))


class IntegrityProbe:
    """The probe one gate keeps: one connection (reopened after a failure), the step's watermarks
    (found at the first read) and the ledger's path, re-read on every poll as it grows.
    ``dsn`` is a callable so that resolving the Connection happens on the first read, in the
    trigger's worker thread, never in the trigger's constructor."""

    def __init__(self, dsn: Callable[[], str], since_epoch: float, ledger_path: str | None) -> None:
        self._dsn, self.since_epoch, self.ledger_path = dsn, since_epoch, ledger_path or None
        self._conn: psycopg2.extensions.connection | None = None
        self.watermarks: dict[str, int] | None = None
        self._expanded: bool | None = None

    def read(self) -> IntegritySnapshot:
        """One probe; IntegrityProbeError (or AcknowledgedWritesError for a bad ledger) when it cannot judge."""
        from cutover_kit.acknowledged_writes import load_acknowledged_writes
        from cutover_kit.integrity import acknowledged_since

        if self._conn is None or self._conn.closed:
            self._conn = connect(self._dsn())
        try:
            if self.watermarks is None:
                with self._conn:
                    self._expanded = expanded(self._conn)
                self.watermarks = find_watermarks(self._conn, self.since_epoch)
            acknowledged = None
            if self.ledger_path:
                acknowledged = acknowledged_since(load_acknowledged_writes(self.ledger_path), self.watermarks[LEDGER_TABLE])
            return read_snapshot(self._conn, self.watermarks, acknowledged, compare_columns=bool(self._expanded))
        except IntegrityProbeError:
            self.close()
            raise
        except psycopg2.Error as error:
            self.close()
            raise IntegrityProbeError(f"reading the schema version failed: {str(error).strip()}") from error

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
