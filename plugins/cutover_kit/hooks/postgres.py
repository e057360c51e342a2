"""The shared PostgreSQL database's Connection as a libpq DSN (psycopg2 and the db/ helpers take DSNs),
and the database roles the live apps connect as (the SLO gate's statement time per color)."""

from __future__ import annotations

from typing import Any

from cutover_kit import connections


def connection_dsn(conn_id: str = connections.POSTGRES, database: str | None = None) -> str:
    """libpq DSN of an Airflow Connection (host, port, login, password, schema as the database)."""
    import psycopg2.extensions
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    params = {"host": conn.host, "port": conn.port, "user": conn.login, "password": conn.password,
              "dbname": database or conn.schema}
    return psycopg2.extensions.make_dsn(**{key: value for key, value in params.items() if value})


def app_database_roles(conn_ids: dict[str, str] | None = None) -> dict[str, str | None]:
    """{color: the database role that color's live app connects as}, from each app Connection's
    extra ``database_role`` (None when a Connection names none: its statement time is then no data)."""
    from airflow.sdk import BaseHook

    conn_ids = conn_ids or {"blue": connections.APP_BLUE, "green": connections.APP_GREEN}
    return {color: BaseHook.get_connection(conn_id).extra_dejson.get("database_role") or None
            for color, conn_id in conn_ids.items()}


def app_statement_reader(conn_id: str = connections.POSTGRES) -> tuple[dict[str, str | None], Any]:
    """(roles per color, a StatementTotalsReader of those roles in the Connection's database)."""
    import psycopg2.extensions

    from cutover_kit.load.pg_stats import StatementTotalsReader

    dsn = connection_dsn(conn_id)
    roles = app_database_roles()
    database = psycopg2.extensions.parse_dsn(dsn).get("dbname")
    return roles, StatementTotalsReader(dsn, [role for role in roles.values() if role], database)
