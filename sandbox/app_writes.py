"""The SQL each app issues for its order and user writes and reads, for database tests and
benchmarks that need both apps' traffic on the shared schema without running the apps.

Blue (sandbox/apps/rails, ActiveRecord) reads and writes the legacy columns only; green
(sandbox/apps/typescript/src/api.ts) writes the expanded columns and leaves the legacy ones to
the expand migration's triggers. The statements here are those, column for column; the apps'
own validation (status codes, messages) is tested in each app's own suite.
"""

from __future__ import annotations

import decimal
from typing import Any

import psycopg2
import psycopg2.extensions

# The columns green reads: rows the backfill has not reached yet still have NULL new columns.
GREEN_ORDER_COLUMNS = (
    "id, user_id, coalesce(amount, round(amount_cents / 100.0, 2)) AS amount, coalesce(currency, 'USD') AS currency,"
    " coalesce(status_v2::text, status) AS status, created_at, updated_at"
)
BLUE_ORDER_COLUMNS = "id, user_id, amount_cents, status, created_at, updated_at"


class AppSession:
    """One autocommit connection named like the app's (application_name sandbox-app-COLOR), so
    each statement commits before its answer, as in the apps."""

    def __init__(self, dsn: str, color: str) -> None:
        if color not in ("blue", "green"):
            raise ValueError(f"color must be blue or green, got {color!r}")
        self.color = color
        self._conn = psycopg2.connect(psycopg2.extensions.make_dsn(
            dsn, connect_timeout=2, application_name=f"sandbox-app-{color}", options="-c statement_timeout=5000"))
        self._conn.autocommit = True

    def fetch_one(self, sql: str, params: tuple = ()) -> dict[str, Any] | None:
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return None if row is None else dict(zip([c.name for c in cur.description], row))

    def close(self) -> None:
        self._conn.close()

    # ---------------------------------------------------------------------------------- blue

    def blue_create_order(self, user_id: int, amount_cents: int) -> dict[str, Any]:
        return self.fetch_one("INSERT INTO orders (user_id, amount_cents, status, created_at, updated_at)"
                              " VALUES (%s, %s, 'pending', now(), now()) RETURNING id", (user_id, amount_cents))

    def blue_create_user(self, email: str, name: str | None = None) -> dict[str, Any]:
        return self.fetch_one("INSERT INTO users (email, name, created_at, updated_at) VALUES (%s, %s, now(), now())"
                              " RETURNING id", (email, name))

    def blue_get_order(self, order_id: int) -> dict[str, Any] | None:
        return self.fetch_one(f"SELECT {BLUE_ORDER_COLUMNS} FROM orders WHERE id = %s", (order_id,))

    # --------------------------------------------------------------------------------- green

    def green_create_order(self, user_id: int, amount: str | decimal.Decimal, currency: str = "USD") -> dict[str, Any]:
        # amount_cents and status are the expand trigger's job, as in the TypeScript app.
        return self.fetch_one("INSERT INTO orders (user_id, amount, currency, status_v2, created_at, updated_at)"
                              " VALUES (%s, %s, %s, 'pending', now(), now()) RETURNING id",
                              (user_id, decimal.Decimal(amount), currency))

    def green_create_user(self, email: str, name: str | None = None) -> dict[str, Any]:
        return self.fetch_one("INSERT INTO users (email, email_normalized, name, created_at, updated_at)"
                              " VALUES (%s, lower(btrim(%s)), %s, now(), now()) RETURNING id", (email, email, name))

    def green_get_order(self, order_id: int) -> dict[str, Any] | None:
        """Green's answer: blue's fields (amount_cents included) plus amount and currency."""
        row = self.fetch_one(f"SELECT {GREEN_ORDER_COLUMNS} FROM orders WHERE id = %s", (order_id,))
        if row is None:
            return None
        amount = row["amount"]
        return {"id": row["id"], "user_id": row["user_id"], "amount_cents": int(amount * 100), "status": row["status"],
                "created_at": row["created_at"], "updated_at": row["updated_at"],
                "amount": str(amount), "currency": row["currency"].strip()}
