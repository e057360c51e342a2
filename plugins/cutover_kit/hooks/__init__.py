"""Hooks wrap Airflow Connections; each fetches its Connection lazily, never at import or parse."""

from __future__ import annotations

from typing import Any


def http_base_url(conn: Any, conn_id: str) -> str:
    """``scheme://host:port`` from an HTTP-style Connection (``schema`` may say http or https)."""
    extra = conn.extra_dejson
    if extra.get("base_url"):
        return str(extra["base_url"]).rstrip("/")
    if not conn.host:
        raise ValueError(f"Connection {conn_id!r} has no host")
    scheme = conn.schema if conn.schema in ("http", "https") else "http"
    host = conn.host if "://" in conn.host else f"{scheme}://{conn.host}"
    return f"{host}:{conn.port}" if conn.port else host
