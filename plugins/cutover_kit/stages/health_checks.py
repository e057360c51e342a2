"""Stage 5, health checks (task group ``stage_05_health_checks``): liveness and readiness of both colors, PostgreSQL and Redis round trips."""

from __future__ import annotations

import logging
import uuid

from airflow.sdk.exceptions import AirflowException

from cutover_kit import connections

log = logging.getLogger(__name__)


def check_color_health(color: str) -> dict[str, object]:
    from cutover_kit.hooks.service import ServiceHook

    hook = ServiceHook(f"app_{color}")
    lines, failures = {}, []
    for path in ("/healthz", "/readyz"):
        probe = hook.probe("GET", path)
        line = f"{color} {path}: " + (f"HTTP {probe.status} in {probe.elapsed_ms:.0f} ms" if probe.status else probe.error)
        lines[path] = line
        if probe.status != 200:
            failures.append(line)
    if failures:
        # Retryable: an app still starting answers 503 on /readyz for a moment.
        raise AirflowException("Health check failed: " + "; ".join(failures))
    reason = "; ".join(lines.values())
    log.info(reason)
    return {"verdict": "PASS", "reason": reason}


def check_postgres() -> dict[str, object]:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=connections.POSTGRES)
    version = hook.get_first("SHOW server_version")[0]
    migrations = hook.get_first("SELECT count(*), max(version) FROM schema_migrations")
    line = f"PostgreSQL {version} answers; schema_migrations has {migrations[0]} versions, latest {migrations[1]}"
    log.info(line)
    return {"verdict": "PASS", "reason": line}


def check_redis() -> dict[str, object]:
    from cutover_kit.hooks.redis_store import RedisHook

    client = RedisHook().get_conn()
    key = f"cutover:healthcheck:{uuid.uuid4().hex}"
    client.set(key, "ok", ex=30)
    value = client.get(key)
    client.delete(key)
    if value != b"ok":
        raise AirflowException(f"Redis round trip returned {value!r}, expected b'ok'")
    line = f"Redis {client.info('server')['redis_version']} answers; SET/GET/DEL round trip ok"
    log.info(line)
    return {"verdict": "PASS", "reason": line}
