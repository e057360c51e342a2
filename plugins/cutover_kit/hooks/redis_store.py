"""RedisHook: a redis-py client from Connection ``redis_default`` (host, port, password, extra.db).

The Airflow Redis provider is not part of our stack; this is the few lines we need of it.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from cutover_kit import connections


class RedisHook(BaseHook):
    conn_name_attr = "redis_conn_id"
    default_conn_name = connections.REDIS
    conn_type = "redis"
    hook_name = "Redis"

    def __init__(self, redis_conn_id: str = default_conn_name, timeout_seconds: float = 2.0) -> None:
        super().__init__()
        self.redis_conn_id = redis_conn_id
        self.timeout_seconds = timeout_seconds

    def get_conn(self):
        import redis

        conn = self.get_connection(self.redis_conn_id)
        return redis.Redis(
            host=conn.host or "127.0.0.1",
            port=conn.port or 6379,
            password=conn.password or None,
            db=int(conn.extra_dejson.get("db", 0)),
            socket_timeout=self.timeout_seconds,
            socket_connect_timeout=self.timeout_seconds,
        )
