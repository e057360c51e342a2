"""PostgreSQL's side of the bottleneck hints (no Airflow): what one color's database role did in
the stage's copy database during its load run.

* :class:`ConnectionSampler`: pg_stat_activity once a second in a thread while Locust runs:
  connections the role holds in the copy, and how many are active at once.
* :func:`slowest_statements`: pg_stat_statements rows of the role in the copy, by total time.
  The view lives in the database where ``CREATE EXTENSION pg_stat_statements`` ran; its figures
  are cluster-wide, so the DSN's own database is tried first, then the ``postgres`` maintenance
  database (where the sandbox installs it: an extension in the app database would end up in
  its backups, which a non-superuser cannot restore).
* :func:`server_limits`: max_connections and the role's CONNECTION LIMIT.
* :class:`StatementTotalsReader`: every statement of the live apps' roles, read by the SLO gate on
  each poll (database statement time per color, cutover_kit.vitals and cutover_kit.apm).

Reading other roles' rows needs the Connection's role to hold ``pg_read_all_stats`` (or
``pg_monitor``). Every failure raises :class:`PgStatsUnavailable` with the reason, which the hint
records as "unavailable: <why>" (hints are advisory).
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

MAINTENANCE_DATABASE = "postgres"
UTILITY = r"^\s*(BEGIN|COMMIT|ROLLBACK|SET|SHOW|RESET|DISCARD|DEALLOCATE|START TRANSACTION)\b"
SLOWEST_SQL = f"""
SELECT s.query, s.calls, s.mean_exec_time, s.total_exec_time
  FROM pg_stat_statements s
  JOIN pg_roles r ON r.oid = s.userid
  JOIN pg_database d ON d.oid = s.dbid
 WHERE r.rolname = %s AND d.datname = %s AND s.query !~* '{UTILITY}'
 ORDER BY s.total_exec_time DESC
 LIMIT %s
"""
TOTALS_SQL = f"""
SELECT r.rolname, s.query, s.calls, s.total_exec_time
  FROM pg_stat_statements s
  JOIN pg_roles r ON r.oid = s.userid
  JOIN pg_database d ON d.oid = s.dbid
 WHERE r.rolname = ANY(%s) AND d.datname = %s AND s.query !~* '{UTILITY}'
"""
ACTIVITY_SQL = """
SELECT count(*), count(*) FILTER (WHERE state = 'active'), count(*) FILTER (WHERE state IS NULL)
  FROM pg_stat_activity WHERE usename = %s AND datname = %s
"""


class PgStatsUnavailable(RuntimeError):
    """The figure could not be read; the message says why, in words an operator can act on."""


def _connect(dsn: str, database: str | None = None) -> psycopg2.extensions.connection:
    params = psycopg2.extensions.parse_dsn(dsn)
    if database:
        params["dbname"] = database
    try:
        conn = psycopg2.connect(**params, connect_timeout=3, application_name="cutover-load-hints")
    except psycopg2.Error as error:
        raise PgStatsUnavailable(f"cannot connect to {params.get('dbname')}: {str(error).strip()}") from error
    conn.autocommit = True
    return conn


def _read_statements_view(dsn: str, sql_text: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows of a query on pg_stat_statements: the DSN's own database first, then the maintenance
    database (where the sandbox installs the view); PgStatsUnavailable with every reason otherwise."""
    own = psycopg2.extensions.parse_dsn(dsn).get("dbname")
    problems = []
    for where in dict.fromkeys(filter(None, (own, MAINTENANCE_DATABASE))):
        try:
            conn = _connect(dsn, where)
        except PgStatsUnavailable as error:
            problems.append(str(error))
            continue
        try:
            with conn.cursor() as cur:
                cur.execute(sql_text, params)
                return cur.fetchall()
        except psycopg2.errors.UndefinedTable:
            problems.append(f"no pg_stat_statements view in database {where}")
            continue
        except psycopg2.Error as error:  # e.g. the library is not in shared_preload_libraries
            raise PgStatsUnavailable(f"pg_stat_statements in {where}: {str(error).strip()}") from error
        finally:
            conn.close()
    raise PgStatsUnavailable("pg_stat_statements is not installed (" + "; ".join(problems) + "): load it with "
                             "shared_preload_libraries and CREATE EXTENSION pg_stat_statements")


def _refuse_hidden(rows: list[tuple[Any, ...]], query_column: int, roles: str) -> None:
    if any(row[query_column] == "<insufficient privilege>" for row in rows):
        raise PgStatsUnavailable(f"the Connection's role may not read role {roles}'s statements: "
                                 "GRANT pg_read_all_stats to it")


def slowest_statements(dsn: str, role: str, database: str, limit: int = 3) -> list[dict[str, Any]]:
    """The role's top statements in `database` by total execution time:
    [{query, calls, mean_ms, total_ms}], or PgStatsUnavailable."""
    rows = _read_statements_view(dsn, SLOWEST_SQL, (role, database, limit))
    _refuse_hidden(rows, 0, role)
    return [{"query": query, "calls": int(calls), "mean_ms": round(float(mean), 3), "total_ms": round(float(total), 1)}
            for query, calls, mean, total in rows]


class StatementTotalsReader:
    """Every statement of some roles in one database, as counted so far (the SLO gate reads it on
    each poll and differences the readings: cutover_kit.apm.StatementWindow). One connection held
    open between readings: a password handshake per poll would cost more than the query. The view
    is found as :func:`slowest_statements` finds it; close() when done."""

    def __init__(self, dsn: str, roles: list[str], database: str) -> None:
        self.dsn, self.roles, self.database = dsn, list(roles), database
        self._conn: psycopg2.extensions.connection | None = None

    def _open(self) -> psycopg2.extensions.connection:
        own = psycopg2.extensions.parse_dsn(self.dsn).get("dbname")
        problems = []
        for where in dict.fromkeys(filter(None, (own, MAINTENANCE_DATABASE))):
            try:
                conn = _connect(self.dsn, where)
            except PgStatsUnavailable as error:
                problems.append(str(error))
                continue
            with conn.cursor() as cur:
                cur.execute("SELECT to_regclass('pg_stat_statements') IS NOT NULL")
                if cur.fetchone()[0]:
                    return conn
            conn.close()
            problems.append(f"no pg_stat_statements view in database {where}")
        raise PgStatsUnavailable("pg_stat_statements is not installed (" + "; ".join(problems) + ")")

    def read(self) -> dict[str, list[dict[str, Any]]]:
        """{role: [{query, calls, total_ms}]}; PgStatsUnavailable when the view cannot be read."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._open()
            with self._conn.cursor() as cur:
                cur.execute(TOTALS_SQL, (self.roles, self.database))
                rows = cur.fetchall()
        except psycopg2.Error as error:
            self.close()  # reconnect on the next reading
            raise PgStatsUnavailable(f"pg_stat_statements: {str(error).strip()}") from error
        _refuse_hidden(rows, 1, ", ".join(self.roles))
        found: dict[str, list[dict[str, Any]]] = {role: [] for role in self.roles}
        for role, query, calls, total in rows:
            found[role].append({"query": query, "calls": int(calls), "total_ms": float(total)})
        return found

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def server_limits(dsn: str, role: str) -> tuple[int | None, int | None]:
    """(max_connections, the role's CONNECTION LIMIT or None when unlimited)."""
    conn = _connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('max_connections')::int, "
                        "(SELECT rolconnlimit FROM pg_roles WHERE rolname = %s)", (role,))
            max_connections, limit = cur.fetchone()
    except psycopg2.Error as error:
        raise PgStatsUnavailable(f"server limits: {str(error).strip()}") from error
    finally:
        conn.close()
    return max_connections, (limit if limit is not None and limit >= 0 else None)


class ConnectionSampler:
    """Samples the role's connections in `database` every `interval` seconds until stopped:
    ``with ConnectionSampler(dsn, role, db) as sampler: ...; sampler.samples``. The first error
    stops sampling and is kept in ``error`` (a hint then says why it is unavailable)."""

    def __init__(self, dsn: str, role: str, database: str, interval: float = 1.0) -> None:
        self.dsn, self.role, self.database, self.interval = dsn, role, database, interval
        self.samples: list[dict[str, int]] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pg-sampler-{role}", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            conn = _connect(self.dsn)
        except PgStatsUnavailable as error:
            self.error = str(error)
            return
        try:
            while not self._stop.is_set():
                with conn.cursor() as cur:
                    cur.execute(ACTIVITY_SQL, (self.role, self.database))
                    held, active, hidden = cur.fetchone()
                if hidden:
                    self.error = (f"pg_stat_activity hides role {self.role}'s session states from the Connection's role: "
                                  "GRANT pg_read_all_stats to it")
                    return
                # This sampler's own connection is another role's: it never counts itself.
                self.samples.append({"held": int(held), "active": int(active)})
                self._stop.wait(self.interval)
        except psycopg2.Error as error:
            self.error = f"pg_stat_activity: {str(error).strip()}"
        finally:
            conn.close()
