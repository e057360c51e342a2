"""The shared PostgreSQL database's Connection as a libpq DSN (psycopg2 and the db/ helpers take DSNs)."""

from __future__ import annotations

from cutover_kit import connections


def connection_dsn(conn_id: str = connections.POSTGRES, database: str | None = None) -> str:
    """libpq DSN of an Airflow Connection (host, port, login, password, schema as the database)."""
    import psycopg2.extensions
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    params = {"host": conn.host, "port": conn.port, "user": conn.login, "password": conn.password,
              "dbname": database or conn.schema}
    return psycopg2.extensions.make_dsn(**{key: value for key, value in params.items() if value})
