"""Demo service, one process per color: ``python -m sandbox.app --color blue --port 18081``.

Blue stands for the legacy Rails app, green for its rewrite; both serve the same JSON API on the
same database (DSN from env ``SANDBOX_APP_DSN``). Every response carries ``X-App-Color: <color>``
(the process that answered) and ``X-Served-By: rails|typescript`` (the implementation whose code
produced the answer).

Feature flags (green only). Per request, green asks its flag evaluator (sandbox.flag_evaluators:
the flagd file in-process, or Unleash) whether this request's feature area (users, orders) is
served by its own code: ``serves_new_code(feature_on, rollout_on)``, with the user id from
``X-User-Id`` (else the path or body) and ``via_router`` from the ``X-Cutover-Via: router`` header
HAProxy sets. Otherwise green forwards the request to blue (Rails) over pooled keep-alive
connections and returns blue's status and body with ``X-Served-By: rails``: flipping the flags
to Rails moves feature traffic back without touching the router. On direct requests (not through
HAProxy) ``X-Cutover-Serve: typescript|rails`` forces one side (the smoke checks' parity tests).
Forwarded requests are counted in ``http_forwarded_requests_total`` / ``http_forward_duration_seconds``,
not in ``http_requests_total``: green's SLIs cover what green's own code serves, and blue's own
metrics already count the forwarded request (its failure is blue's). Injected error and latency
faults model a defect in green's new code, so they hit only what green serves itself.
``GET /__flags`` (loopback only, like ``/__fault``) reports the flags the app evaluates right now.

Blue only knows the legacy (Rails) columns. Green uses the shape of the expand migration
20261126000001: it writes ``amount`` (decimal), ``currency`` and ``status_v2`` (and lets the
database's triggers fill ``amount_cents``/``status``), and reads amount, currency and status from
the new columns. Green therefore needs that schema: below it, ``/readyz`` and the API answer 503
"schema version X < required 20261126000001". The version is read at most once a second. Both
colors return the same JSON fields (green adds ``amount`` and ``currency``), so clients see no
difference.

Fault control (``/__fault``) lets rehearsals inject 5xx errors, latency or a crash, and lets the
smoke DAG's tests make one app's answers drift (``body_drift``: every ``status`` field of its JSON
API answers upper-cased, e.g. an order's "paid" becomes "PAID"). It is only
accepted from loopback clients that did not come through HAProxy (HAProxy also denies it and adds
X-Forwarded-For, which this app refuses as a second line of defence).
"""

from __future__ import annotations

import argparse
import decimal
import http.client
import json
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.pool
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import ProcessCollector

from cutover_kit.flags.model import FEATURES, RAILS, TYPESCRIPT, FlagEvaluator, serves_new_code
from sandbox.config import GREEN_REQUIRED_SCHEMA

LATENCY_BUCKETS = (.001, .0025, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .15, .2, .3, .5, .75, 1, 2, 5)
MAX_BODY_BYTES = 64 * 1024
MAX_ADDED_LATENCY_MS = 30_000  # stays below HAProxy's `timeout server` so latency is not turned into 504s
CRASH_EXIT_CODE = 70  # EX_SOFTWARE: distinguishable from a SIGTERM/SIGKILL stop in logs and tests
POOL_SIZE = 20
POOL_WAIT_SECONDS = 5.0
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
UNMATCHED_ROUTE = "unmatched"  # one label value for every unknown path keeps metric cardinality bounded
SCHEMA_CHECK_SECONDS = 1.0  # green re-reads schema_migrations at most this often
MAX_AMOUNT = decimal.Decimal("21474836.47")  # amount_cents is a 32-bit integer in the legacy shape
FORWARD_POOL_SIZE = 16  # idle keep-alive connections green keeps to blue (HAProxy sends <= 16 at once)
FORWARD_TIMEOUT_SECONDS = 33.0  # above blue's maximum injected latency (30 s), below HAProxy's 35 s
FORWARD_MAX_IDLE_SECONDS = 30.0  # well under blue's 120 s idle timeout: never reuse a connection blue closed
FORWARDED_RESPONSE_HEADERS = ("Content-Type", "X-Fault-Injected")
VIA_ROUTER_HEADER, FORCE_SERVE_HEADER, USER_ID_HEADER = "X-Cutover-Via", "X-Cutover-Serve", "X-User-Id"


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DatabaseUnavailable(HttpError):
    def __init__(self, message: str) -> None:
        super().__init__(503, f"database unavailable: {message}")


# --------------------------------------------------------------------------------------------
# Metrics


class Metrics:
    def __init__(self, color: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.color = color
        self.requests = Counter(
            "http_requests", "HTTP requests handled, by route template and status code",
            ["color", "route", "method", "code"], registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds", "Time from request parsed to response ready, injected latency included",
            ["color", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        info = Gauge("app_info", "Always 1; identifies the color of this process", ["color"], registry=self.registry)
        info.labels(color=color).set(1)
        # Requests green passed on to blue because a flag said Rails: kept apart from the SLI series
        # above so the gate judges only what green's own code served (blue counts them as its own).
        self.forwarded = Counter(
            "http_forwarded_requests", "API requests forwarded to Rails (blue) because of the feature flags",
            ["color", "route", "method", "code"], registry=self.registry,
        )
        self.forward_duration = Histogram(
            "http_forward_duration_seconds", "Time to answer a forwarded request, blue's time included",
            ["color", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )

    def precreate(self, routes: tuple[Route, ...]) -> None:
        """Expose 0-valued series for each API route's success and 500 codes from the start.

        rate() cannot see the 0 -> 1 step of a series that appears at 1, so without this the
        first error of each route would be invisible to the error-ratio rules.
        """
        for route in routes:
            for code in (route.success_code, 500):
                self.requests.labels(color=self.color, route=route.template, method=route.method, code=str(code))
            self.duration.labels(color=self.color, route=route.template)

    def observe(self, route: str, method: str, code: int, seconds: float) -> None:
        self.requests.labels(color=self.color, route=route, method=method, code=str(code)).inc()
        self.duration.labels(color=self.color, route=route).observe(seconds)

    def observe_forwarded(self, route: str, method: str, code: int, seconds: float) -> None:
        self.forwarded.labels(color=self.color, route=route, method=method, code=str(code)).inc()
        self.forward_duration.labels(color=self.color, route=route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# --------------------------------------------------------------------------------------------
# Fault state


@dataclass
class FaultSettings:
    error_fraction: float = 0.0
    added_latency_ms: float = 0.0
    body_drift: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"error_fraction": self.error_fraction, "added_latency_ms": self.added_latency_ms,
                "body_drift": self.body_drift}


class FaultState:
    """Current faults, shared by all request threads (reads and writes under one lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings = FaultSettings()

    def snapshot(self) -> FaultSettings:
        with self._lock:
            return FaultSettings(**self._settings.as_dict())

    def update(self, error_fraction: float | None, added_latency_ms: float | None,
               body_drift: bool | None = None) -> FaultSettings:
        with self._lock:
            if error_fraction is not None:
                self._settings.error_fraction = error_fraction
            if added_latency_ms is not None:
                self._settings.added_latency_ms = added_latency_ms
            if body_drift is not None:
                self._settings.body_drift = body_drift
            return FaultSettings(**self._settings.as_dict())

    def clear(self) -> FaultSettings:
        with self._lock:
            self._settings = FaultSettings()
            return FaultSettings()


def parse_fault_request(body: Any) -> tuple[float | None, float | None, bool]:
    """Validate a /__fault JSON body; raise HttpError(400) naming the bad field.

    ``body_drift`` is read separately (:func:`parse_body_drift`), so this signature stays as it was.
    """
    if not isinstance(body, dict):
        raise HttpError(400, "fault body must be a JSON object with error_fraction, added_latency_ms, body_drift "
                             "and/or crash")
    unknown = sorted(set(body) - {"error_fraction", "added_latency_ms", "crash", "body_drift"})
    if unknown:
        raise HttpError(400, f"unknown fault field(s): {', '.join(unknown)}")
    fraction = _number_field(body, "error_fraction", 0.0, 1.0)
    latency = _number_field(body, "added_latency_ms", 0.0, float(MAX_ADDED_LATENCY_MS))
    crash = body.get("crash", False)
    if not isinstance(crash, bool):
        raise HttpError(400, f"crash must be true or false, got {crash!r}")
    if fraction is None and latency is None and not crash and parse_body_drift(body) is None:
        raise HttpError(400, "fault body sets nothing: give error_fraction, added_latency_ms, body_drift or crash")
    return fraction, latency, crash


def parse_body_drift(body: dict[str, Any]) -> bool | None:
    """``body_drift``: true/false, or None when the body does not mention it."""
    if "body_drift" not in body:
        return None
    if not isinstance(body["body_drift"], bool):
        raise HttpError(400, f"body_drift must be true or false, got {body['body_drift']!r}")
    return body["body_drift"]


def drift_body(payload: Any) -> Any:
    """The body_drift fault: every string ``status`` field upper-cased, at any depth (an order, or
    each order of a list). Other fields are untouched, so a parity diff names exactly this one."""
    if isinstance(payload, dict):
        return {key: value.upper() if key == "status" and isinstance(value, str) else drift_body(value)
                for key, value in payload.items()}
    if isinstance(payload, list):
        return [drift_body(item) for item in payload]
    return payload


def _number_field(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    if name not in body:
        return None
    value = body[name]
    # bool is an int subclass in Python; `true` is not a fraction.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HttpError(400, f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise HttpError(400, f"{name} must be between {low:g} and {high:g}, got {value}")
    return float(value)


# --------------------------------------------------------------------------------------------
# Database


class Database:
    """A thread-safe pool with a bounded wait: callers get 503 rather than hanging forever."""

    def __init__(self, dsn: str, color: str) -> None:
        self._dsn = psycopg2.extensions.make_dsn(
            dsn, connect_timeout=2, application_name=f"sandbox-app-{color}",
            options="-c statement_timeout=5000",
        )
        # minconn=0: the app must start (and answer /healthz) even while PostgreSQL is down.
        self._pool = psycopg2.pool.ThreadedConnectionPool(0, POOL_SIZE, self._dsn)
        self._slots = threading.BoundedSemaphore(POOL_SIZE)

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        if not self._slots.acquire(timeout=POOL_WAIT_SECONDS):
            raise DatabaseUnavailable(f"all {POOL_SIZE} pool connections busy for {POOL_WAIT_SECONDS:g}s")
        try:
            conn = self._checkout()
            try:
                yield conn
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
                # A broken connection must not go back to the pool, or the next request fails too.
                self._pool.putconn(conn, close=True)
                raise DatabaseUnavailable(str(error).strip()) from error
            except BaseException:
                self._pool.putconn(conn, close=conn.closed != 0)
                raise
            else:
                self._pool.putconn(conn)
        finally:
            self._slots.release()

    def _checkout(self) -> psycopg2.extensions.connection:
        try:
            conn = self._pool.getconn()
        except psycopg2.OperationalError as error:
            raise DatabaseUnavailable(str(error).strip()) from error
        # Autocommit: each statement is its own transaction, so a write is committed before the
        # 201 that acknowledges it, and no connection sits idle in a transaction.
        if not conn.autocommit:
            conn.autocommit = True
        return conn

    def fetch_one(self, sql: str, params: tuple = ()) -> dict[str, Any] | None:
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return None if row is None else dict(zip([c.name for c in cur.description], row))

    def fetch_all(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            names = [c.name for c in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def close(self) -> None:
        self._pool.closeall()


class SchemaGate:
    """The database's schema version (max of schema_migrations), cached for `ttl` seconds.

    Green asks it before every request; the database sees at most one query per second.
    """

    def __init__(self, db: Database, required: str = GREEN_REQUIRED_SCHEMA, ttl: float = SCHEMA_CHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self.required = required
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._version: str | None = None
        self._checked_at = 0.0
        self.queries = 0  # how often the database was actually asked (tests check the cache)

    def version(self) -> str:
        with self._lock:
            if self._version is not None and self._clock() - self._checked_at < self._ttl:
                return self._version
            row = self._db.fetch_one("SELECT coalesce(max(version), '') AS version FROM schema_migrations")
            self.queries += 1
            self._version, self._checked_at = row["version"], self._clock()
            return self._version

    def invalidate(self) -> None:
        with self._lock:
            self._version = None

    def problem(self) -> str | None:
        """None when the schema is recent enough, else the reason green cannot serve."""
        version = self.version()
        if version < self.required:
            return f"schema version {version or '(none)'} < required {self.required}"
        return None


# --------------------------------------------------------------------------------------------
# API handlers: (database, path params, JSON body) -> (status, payload)

Result = tuple[int, Any]


def get_user(db: Database, params: dict[str, int], _body: Any) -> Result:
    row = db.fetch_one("SELECT id, email, name, created_at, updated_at FROM users WHERE id = %s", (params["id"],))
    return (200, row) if row else (404, {"error": f"user {params['id']} not found"})


def create_user(db: Database, _params: dict[str, int], body: Any) -> Result:
    email = _require_str(body, "email")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise HttpError(400, "name must be a string")
    try:
        row = db.fetch_one(
            "INSERT INTO users (email, name, created_at, updated_at) VALUES (%s, %s, now(), now()) RETURNING id",
            (email, name),
        )
    except psycopg2.errors.UniqueViolation:
        raise HttpError(409, f"email {email!r} already taken") from None
    return 201, row


def get_order(db: Database, params: dict[str, int], _body: Any) -> Result:
    row = db.fetch_one(
        "SELECT id, user_id, amount_cents, status, created_at, updated_at FROM orders WHERE id = %s", (params["id"],)
    )
    return (200, row) if row else (404, {"error": f"order {params['id']} not found"})


def list_user_orders(db: Database, params: dict[str, int], _body: Any) -> Result:
    rows = db.fetch_all(
        "SELECT id, user_id, amount_cents, status, created_at, updated_at FROM orders"
        " WHERE user_id = %s ORDER BY id DESC LIMIT 20",
        (params["id"],),
    )
    return 200, {"user_id": params["id"], "orders": rows}


def create_order(db: Database, _params: dict[str, int], body: Any) -> Result:
    user_id = _require_int(body, "user_id", minimum=1)
    amount = _require_int(body, "amount_cents", minimum=1, maximum=2**31 - 1)
    try:
        row = db.fetch_one(
            "INSERT INTO orders (user_id, amount_cents, status, created_at, updated_at)"
            " VALUES (%s, %s, 'pending', now(), now()) RETURNING id",
            (user_id, amount),
        )
    except psycopg2.errors.ForeignKeyViolation:
        raise HttpError(422, f"user {user_id} does not exist") from None
    return 201, row


# Green (the rewrite): the expanded shape. Rows the backfill has not reached yet still have NULL
# new columns, so reads fall back to the legacy ones (the values are equal by construction).
GREEN_ORDER_COLUMNS = (
    "id, user_id, coalesce(amount, round(amount_cents / 100.0, 2)) AS amount, coalesce(currency, 'USD') AS currency,"
    " coalesce(status_v2::text, status) AS status, created_at, updated_at"
)


def _green_order(row: dict[str, Any]) -> dict[str, Any]:
    """Same fields as blue's answer (amount_cents included), plus amount and currency."""
    amount = row["amount"]
    return {"id": row["id"], "user_id": row["user_id"], "amount_cents": int(amount * 100), "status": row["status"],
            "created_at": row["created_at"], "updated_at": row["updated_at"],
            "amount": str(amount), "currency": row["currency"].strip()}


def green_get_order(db: Database, params: dict[str, int], _body: Any) -> Result:
    row = db.fetch_one(f"SELECT {GREEN_ORDER_COLUMNS} FROM orders WHERE id = %s", (params["id"],))
    return (200, _green_order(row)) if row else (404, {"error": f"order {params['id']} not found"})


def green_list_user_orders(db: Database, params: dict[str, int], _body: Any) -> Result:
    rows = db.fetch_all(f"SELECT {GREEN_ORDER_COLUMNS} FROM orders WHERE user_id = %s ORDER BY id DESC LIMIT 20",
                        (params["id"],))
    return 200, {"user_id": params["id"], "orders": [_green_order(row) for row in rows]}


def green_create_order(db: Database, _params: dict[str, int], body: Any) -> Result:
    user_id = _require_int(body, "user_id", minimum=1)
    amount = parse_amount(body)
    currency = body.get("currency", "USD")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise HttpError(400, f"currency must be a 3-letter ISO code like USD, got {currency!r}")
    try:
        # amount_cents and status are left to the expand's trigger, exactly like the real rewrite.
        row = db.fetch_one(
            "INSERT INTO orders (user_id, amount, currency, status_v2, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'pending', now(), now()) RETURNING id",
            (user_id, amount, currency),
        )
    except psycopg2.errors.ForeignKeyViolation:
        raise HttpError(422, f"user {user_id} does not exist") from None
    return 201, row


def green_create_user(db: Database, _params: dict[str, int], body: Any) -> Result:
    email = _require_str(body, "email")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise HttpError(400, "name must be a string")
    try:
        row = db.fetch_one(
            "INSERT INTO users (email, email_normalized, name, created_at, updated_at)"
            " VALUES (%s, lower(btrim(%s)), %s, now(), now()) RETURNING id",
            (email, email, name),
        )
    except psycopg2.errors.UniqueViolation:
        raise HttpError(409, f"email {email!r} already taken") from None
    return 201, row


def parse_amount(body: Any) -> decimal.Decimal:
    """Order amount from `amount` (decimal number or string, 2 places) or `amount_cents` (integer)."""
    if not isinstance(body, dict) or ("amount" not in body and "amount_cents" not in body):
        raise HttpError(400, "amount (decimal) or amount_cents (integer) is required")
    from_cents = None
    if "amount_cents" in body:
        from_cents = decimal.Decimal(_require_int(body, "amount_cents", minimum=1, maximum=2**31 - 1)) / 100
    if "amount" not in body:
        return from_cents
    raw = body["amount"]
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise HttpError(400, f"amount must be a decimal number or string, got {raw!r}")
    try:
        amount = decimal.Decimal(str(raw).strip())
    except decimal.InvalidOperation:
        raise HttpError(400, f"amount must be a decimal number, got {raw!r}") from None
    if not amount.is_finite() or amount.as_tuple().exponent < -2 or not decimal.Decimal("0.01") <= amount <= MAX_AMOUNT:
        raise HttpError(400, f"amount must have at most 2 decimal places and lie in [0.01, {MAX_AMOUNT}], got {raw!r}")
    if from_cents is not None and from_cents != amount:
        raise HttpError(400, f"amount {amount} and amount_cents {body['amount_cents']} disagree")
    return amount.quantize(decimal.Decimal("0.01"))


def _require_str(body: Any, name: str) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise HttpError(400, f"{name} is required and must be a non-empty string")
    return value


def _require_int(body: Any, name: str, minimum: int, maximum: int = 2**63 - 1) -> int:
    value = body.get(name) if isinstance(body, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise HttpError(400, f"{name} is required and must be an integer in [{minimum}, {maximum}]")
    return value


ApiHandler = Callable[[Database, dict[str, int], Any], Result]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    template: str
    handler: ApiHandler  # blue, the legacy shape
    success_code: int = 200
    green_handler: ApiHandler | None = None  # green, the expanded shape; None = same SQL as blue
    feature: str = "users"  # the feature area whose flag decides who serves it (FEATURES)

    def handler_for(self, color: str) -> ApiHandler:
        return (self.green_handler or self.handler) if color == "green" else self.handler


API_ROUTES = (
    Route("GET", re.compile(r"/api/users/(?P<id>\d{1,18})"), "/api/users/{id}", get_user, feature="users"),
    Route("POST", re.compile(r"/api/users"), "/api/users", create_user, 201, green_create_user, feature="users"),
    Route("GET", re.compile(r"/api/orders/(?P<id>\d{1,18})"), "/api/orders/{id}", get_order, 200, green_get_order,
          feature="orders"),
    Route("GET", re.compile(r"/api/users/(?P<id>\d{1,18})/orders"), "/api/users/{id}/orders", list_user_orders, 200,
          green_list_user_orders, feature="orders"),
    Route("POST", re.compile(r"/api/orders"), "/api/orders", create_order, 201, green_create_order, feature="orders"),
)
assert {route.feature for route in API_ROUTES} == set(FEATURES), "every feature area needs routes, and only those"
OPS_PATHS = {"/healthz", "/readyz", "/metrics", "/__fault", "/__flags"}
# The experiment's surface: green tags its own answers on this route with the user's variant.
EXPERIMENT_ROUTE = "/api/users/{id}/orders"


def match_api_route(method: str, path: str) -> tuple[Route | None, dict[str, int], bool]:
    """Return (route, params, path_known). path_known without a route means 405."""
    path_known = False
    for route in API_ROUTES:
        found = route.pattern.fullmatch(path)
        if found:
            if route.method == method:
                return route, {k: int(v) for k, v in found.groupdict().items()}, True
            path_known = True
    return None, {}, path_known


# --------------------------------------------------------------------------------------------
# Feature flags: who serves a request on green


def request_user_id(header_value: str | None, route: Route, params: dict[str, int], body: Any) -> int | None:
    """The user a request is evaluated for: X-User-Id, else the user in the path, else in the body."""
    if header_value and header_value.strip().isdigit():
        return int(header_value.strip())
    if route.template.startswith("/api/users/{id}"):
        return params.get("id")
    user_id = body.get("user_id") if isinstance(body, dict) else None
    return user_id if isinstance(user_id, int) and not isinstance(user_id, bool) and user_id > 0 else None


def decide_impl(evaluator: FlagEvaluator | None, route: Route, user_id: int | None, via_router: bool,
                forced: str | None) -> str:
    """Green's per-request choice, TYPESCRIPT (its own code) or RAILS (forward to blue).
    `forced` (X-Cutover-Serve) counts only on direct requests."""
    if forced is not None and not via_router:
        if forced not in (TYPESCRIPT, RAILS):
            raise HttpError(400, f"{FORCE_SERVE_HEADER} must be {TYPESCRIPT} or {RAILS}, got {forced!r}")
        return forced
    if evaluator is None:  # green without flags would be an accident: Rails is the safe answer
        return RAILS
    feature_on = evaluator.feature_on(route.feature, user_id, via_router)
    return TYPESCRIPT if serves_new_code(feature_on, evaluator.rollout_on(user_id, via_router)) else RAILS


class RailsForwarder:
    """Green's way to Rails: pooled keep-alive HTTP/1.1 connections to blue, thread-safe.

    A connection idle longer than FORWARD_MAX_IDLE_SECONDS is dropped rather than reused, so blue
    never closes one under us; a GET that still meets a closed pooled connection is retried once
    on a fresh one (a POST never is: it may have reached blue).
    """

    def __init__(self, base_url: str, pool_size: int = FORWARD_POOL_SIZE, timeout: float = FORWARD_TIMEOUT_SECONDS) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"Rails URL must look like http://host:port, got {base_url!r}")
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()
        self._pool_size = pool_size
        self.connections_opened = 0  # tests check that connections are reused

    def _checkout(self) -> tuple[http.client.HTTPConnection, bool]:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                conn, idle_since = self._idle.pop()
                if now - idle_since < FORWARD_MAX_IDLE_SECONDS:
                    return conn, True
                conn.close()
            self.connections_opened += 1
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout), False

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def forward(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers) of blue's answer; raises HttpError(502) when blue cannot answer."""
        for attempt in (1, 2):
            conn, reused = self._checkout()
            try:
                conn.request(method, path, body=body or None, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                conn.close()
                if reused and method == "GET" and attempt == 1:
                    continue
                raise HttpError(502, f"Rails (blue) unavailable: {type(error).__name__}: {error}") from None
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                raise HttpError(502, f"Rails (blue) unavailable: {type(error).__name__}: {error}") from None
            if response.will_close:
                conn.close()
            else:
                self._checkin(conn)
            kept = {name: response.headers[name] for name in FORWARDED_RESPONSE_HEADERS if response.headers.get(name)}
            return response.status, data, kept
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            for conn, _ in self._idle:
                conn.close()
            self._idle.clear()


@dataclass(frozen=True)
class RawBody:
    """A body passed through unchanged (blue's answer to a forwarded request)."""
    data: bytes
    content_type: str


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class AppServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must never block shutdown
    allow_reuse_address = True
    request_queue_size = 128  # the default backlog of 5 drops connections under bursts

    def __init__(self, address: tuple[str, int], color: str, db: Database, flags: FlagEvaluator | None = None,
                 flag_backend: str | None = None, rails: RailsForwarder | None = None) -> None:
        super().__init__(address, Handler)
        self.color = color
        self.db = db
        # Blue is Rails: it serves everything itself and evaluates no flags. Green needs both.
        self.own_impl = TYPESCRIPT if color == "green" else RAILS
        self.flags = flags
        self.flag_backend = flag_backend
        self.rails = rails
        # Blue (Rails) runs on any schema from the base version on; green needs the expand.
        self.schema = SchemaGate(db) if color == "green" else None
        self.metrics = Metrics(color)
        self.metrics.precreate(API_ROUTES)
        self.faults = FaultState()
        self.random = random.Random()
        self.random_lock = threading.Lock()

    def draw(self) -> float:
        with self.random_lock:
            return self.random.random()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: HAProxy reuses connections (http-reuse safe)
    disable_nagle_algorithm = True  # without it keep-alive responses wait ~40 ms for delayed ACKs
    timeout = 120  # idle keep-alive connections are dropped eventually; HAProxy purges its own sooner
    server: AppServer
    server_version = "sandbox-app"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Access logs at 100 rps would only burn CPU; errors still go through log_message."""

    def _dispatch(self, method: str) -> None:
        started = time.perf_counter()
        path = urlsplit(self.path).path
        headers: dict[str, str] = {"X-Served-By": self.server.own_impl}
        api_route, params, path_known = match_api_route(method, path)
        label = path if path in OPS_PATHS else (api_route.template if api_route else UNMATCHED_ROUTE)
        try:
            body = self._read_json_body()
            if path in OPS_PATHS:
                status, payload = self._ops(method, path, body, headers)
            elif api_route is None:
                status = 405 if path_known else 404
                payload = {"error": f"no route for {method} {path}"}
            else:
                status, payload = self._api(api_route, params, body, headers)
        except HttpError as error:
            status, payload = error.status, {"error": error.message}
        elapsed = time.perf_counter() - started
        if api_route is not None and headers["X-Served-By"] != self.server.own_impl:
            self.server.metrics.observe_forwarded(label, method, status, elapsed)
        elif label != "/metrics":  # scrapes would otherwise dominate the request counts
            self.server.metrics.observe(label, method, status, elapsed)
        self._send(status, payload, headers)

    def _api(self, route: Route, params: dict[str, int], body: Any, headers: dict[str, str]) -> Result:
        user_id = None
        if self.server.color == "green":
            via_router = self.headers.get(VIA_ROUTER_HEADER, "").strip().lower() == "router"
            user_id = request_user_id(self.headers.get(USER_ID_HEADER), route, params, body)
            if decide_impl(self.server.flags, route, user_id, via_router, self.headers.get(FORCE_SERVE_HEADER)) == RAILS:
                return self._forward_to_rails(headers)
        faults = self.server.faults.snapshot()
        if faults.added_latency_ms > 0:
            time.sleep(faults.added_latency_ms / 1000)
        # Injected errors short-circuit before the handler: an injected failure never writes.
        if faults.error_fraction > 0 and self.server.draw() < faults.error_fraction:
            headers["X-Fault-Injected"] = "1"
            return 500, {"error": "injected fault"}
        try:
            schema = self.server.schema
            if schema is not None and (problem := schema.problem()):
                raise HttpError(503, problem)
            status, payload = route.handler_for(self.server.color)(self.server.db, params, body)
            if faults.body_drift and status < 400:
                payload = drift_body(payload)
            if self.server.color == "green" and route.template == EXPERIMENT_ROUTE and self.server.flags is not None:
                headers["X-Experiment-Order-Summary"] = self.server.flags.experiment_variant(user_id)
            return status, payload
        except HttpError:
            raise
        except (psycopg2.errors.UndefinedColumn, psycopg2.errors.UndefinedObject) as error:
            # The schema went back (down migration) within the cache window: answer 503, re-read it.
            if self.server.schema is not None:
                self.server.schema.invalidate()
            raise HttpError(503, f"schema changed under the app: {str(error).strip()}") from None
        except Exception as error:  # noqa: BLE001 - a bug must become a 500, not a dropped connection
            self.log_error("unhandled error on %s %s: %r", route.method, route.template, error)
            return 500, {"error": "internal error"}

    def _forward_to_rails(self, headers: dict[str, str]) -> Result:
        """Blue's answer to this very request: same method, path, query and body."""
        headers["X-Served-By"] = RAILS
        if self.server.rails is None:
            raise HttpError(502, "green has no Rails URL to forward to (--rails-url)")
        sent = {"Content-Type": self.headers.get("Content-Type", "application/json"), "X-Forwarded-By": self.server.color}
        if self.headers.get(USER_ID_HEADER):
            sent[USER_ID_HEADER] = self.headers[USER_ID_HEADER]
        status, data, kept = self.server.rails.forward(self.command, self.path, self._raw_body, sent)
        content_type = kept.pop("Content-Type", "application/json")
        headers.update(kept)
        return status, RawBody(data, content_type)

    def _loopback_only(self, path: str) -> None:
        if self.client_address[0] not in LOOPBACK or "X-Forwarded-For" in self.headers:
            raise HttpError(403, f"{path} is only reachable directly from loopback")

    def _flags(self, method: str) -> Result:
        """The flags this app evaluates right now (the DAG verifies "every app serves Rails" here)."""
        self._loopback_only("/__flags")
        if method != "GET":
            raise HttpError(405, "/__flags only supports GET")
        if self.server.flags is None:
            return 200, {"color": self.server.color, "evaluates_flags": False, "backend": None,
                         "features": dict.fromkeys(FEATURES, False), "serves_rails": self.server.own_impl == RAILS}
        from sandbox.flag_evaluators import evaluated_flags

        return 200, {"color": self.server.color, **evaluated_flags(self.server.flags, self.server.flag_backend or "?")}

    def _ops(self, method: str, path: str, body: Any, headers: dict[str, str]) -> Result:
        if path == "/__fault":
            return self._fault(method, body, headers)
        if path == "/__flags":
            return self._flags(method)
        if method != "GET":
            raise HttpError(405, f"{path} only supports GET")
        if path == "/healthz":
            return 200, {"status": "alive", "color": self.server.color}
        if path == "/readyz":
            self.server.db.fetch_one("SELECT 1 AS ok")  # raises DatabaseUnavailable -> 503
            if self.server.schema is not None and (problem := self.server.schema.problem()):
                return 503, {"status": "not ready", "color": self.server.color, "error": problem}
            return 200, {"status": "ready", "color": self.server.color}
        return 200, self.server.metrics.exposition()

    def _fault(self, method: str, body: Any, headers: dict[str, str]) -> Result:
        if self.client_address[0] not in LOOPBACK or "X-Forwarded-For" in self.headers:
            raise HttpError(403, "fault control is only reachable directly from loopback")
        faults = self.server.faults
        if method == "GET":
            return 200, faults.snapshot().as_dict()
        if method == "DELETE":
            return 200, faults.clear().as_dict()
        if method != "POST":
            raise HttpError(405, "/__fault supports GET, POST and DELETE")
        fraction, latency, crash = parse_fault_request(body)
        settings = faults.update(fraction, latency, parse_body_drift(body))
        if crash:
            headers["Connection"] = "close"
            # Exit after the 202 has left: the caller learns the crash was accepted, then the
            # process dies without cleanup, exactly like a segfault or OOM kill would.
            threading.Timer(0.05, os._exit, args=(CRASH_EXIT_CODE,)).start()
            return 202, {"crashing": True, "exit_code": CRASH_EXIT_CODE}
        return 200, settings.as_dict()

    def _read_json_body(self) -> Any:
        self._raw_body = b""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HttpError(411, "chunked bodies are not supported; send Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise HttpError(400, "invalid Content-Length") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would corrupt the next keep-alive request
            raise HttpError(413, f"body larger than {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length) if length else b""
        self._raw_body = raw  # forwarded to Rails unchanged
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise HttpError(400, f"body is not valid JSON: {error}") from None

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if isinstance(payload, RawBody):
            data, content_type = payload.data, payload.content_type
        elif isinstance(payload, bytes):
            data, content_type = payload, CONTENT_TYPE_LATEST
        else:
            data, content_type = json.dumps(payload, default=str).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Color", self.server.color)
        for name, value in headers.items():
            self.send_header(name, value)
        if headers.get("Connection") == "close":
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


# --------------------------------------------------------------------------------------------
# Process entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Sandbox demo service (blue = legacy, green = rewrite)")
    parser.add_argument("--color", required=True, choices=("blue", "green"))
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--pidfile", type=Path, help="written at start, removed at clean exit")
    parser.add_argument("--rails-url", help="green: blue's base URL (http://host:port), where Rails-flagged requests go")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dsn = os.environ.get("SANDBOX_APP_DSN")
    if not dsn:
        print("sandbox.app: SANDBOX_APP_DSN is not set (libpq DSN of the cutover database)", file=sys.stderr)
        return 2
    flags = rails = backend = None
    if args.color == "green":
        from cutover_kit.flags.model import FlagStoreError
        from sandbox.flag_evaluators import evaluator_from_env

        if not args.rails_url:
            print("sandbox.app: green needs --rails-url (blue's URL) to forward Rails-flagged requests", file=sys.stderr)
            return 2
        try:
            flags = evaluator_from_env(os.environ)
        except FlagStoreError as error:
            print(f"sandbox.app: cannot evaluate feature flags: {error}", file=sys.stderr)
            return 2
        backend = os.environ.get("SANDBOX_FLAG_BACKEND") or "file"
        rails = RailsForwarder(args.rails_url)
    db = Database(dsn, args.color)
    server = AppServer((args.host, args.port), args.color, db, flags=flags, flag_backend=backend, rails=rails)
    if args.pidfile:
        args.pidfile.write_text(f"{os.getpid()}\n")
    # SIGTERM -> orderly stop: serve_forever returns, then the pool closes its connections.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"sandbox.app {args.color} listening on {args.host}:{args.port} pid {os.getpid()}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        db.close()
        if rails is not None:
            rails.close()
        if flags is not None and callable(getattr(flags, "close", None)):
            flags.close()
        if args.pidfile:
            args.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
