"""Data faults for rehearsals of stage 2: damage rows once the backfill is done, behind both apps'
backs (the sync triggers are bypassed), so that only the validation can notice.

Fired by a watcher thread that polls the database every 200 ms for "expand applied and backfill
complete" (no order left with a NULL amount). The damage is recorded with its time and row ids.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg2

from cutover_kit.db.schema_versions import EXPAND_VERSION

log = logging.getLogger("sandbox.data_faults")
POLL_SECONDS = 0.2


def backfill_complete(cur: Any) -> bool:
    cur.execute("SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = %s)", (EXPAND_VERSION,))
    if not cur.fetchone()[0]:
        return False
    cur.execute("SELECT NOT EXISTS (SELECT 1 FROM orders WHERE amount IS NULL)")
    return bool(cur.fetchone()[0])


def corrupt_order_amounts(dsn: str, rows: int) -> list[int]:
    """Add 1.00 to `amount` of the first `rows` orders with triggers disabled: the new column no
    longer equals amount_cents / 100, exactly the kind of silent damage a bad backfill causes."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE orders DISABLE TRIGGER USER")
            cur.execute(
                "UPDATE orders SET amount = amount + 1 WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT %s) RETURNING id",
                (rows,),
            )
            damaged = sorted(row[0] for row in cur.fetchall())
            cur.execute("ALTER TABLE orders ENABLE TRIGGER USER")
    finally:
        conn.close()
    return damaged


class CorruptAfterBackfill:
    def __init__(self, dsn: str, rows: int, max_seconds: float = 900) -> None:
        self.dsn, self.rows, self.max_seconds = dsn, rows, max_seconds
        self.fired_at: float | None = None
        self.damaged_ids: list[int] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="corrupt-after-backfill", daemon=True)

    def start(self) -> CorruptAfterBackfill:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
                    ready = backfill_complete(cur)
                conn.close()
                if ready:
                    self.damaged_ids = corrupt_order_amounts(self.dsn, self.rows)
                    self.fired_at = time.time()
                    log.info("data fault fired: %d order amounts damaged after the backfill", len(self.damaged_ids))
                    return
            except psycopg2.Error as error:  # the database may be mid-migration: try again
                self.error = str(error).strip()
            self._stop.wait(POLL_SECONDS)

    def window(self) -> dict[str, Any] | None:
        if self.fired_at is None:
            return None
        return {"color": None, "kind": "data_corruption", "start": self.fired_at, "end": self.fired_at,
                "error": None, "fault": {"rows": self.rows, "damaged_ids": self.damaged_ids[:20]}}
