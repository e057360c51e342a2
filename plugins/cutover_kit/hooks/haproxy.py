"""HAProxyHook: the traffic router behind Connection ``haproxy_default``.

Connection fields: ``extra.socket_path`` (runtime API unix socket) or host/port of an
``ipv4@`` stats socket; ``extra.backend`` (default "app"), ``extra.blue_server`` and
``extra.green_server`` (default "blue"/"green"), ``extra.frontend_url`` (where clients enter).
"""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.routing import RouterWeights
from cutover_kit.routing.haproxy_runtime import HAProxyRuntimeRouter


class HAProxyHook(BaseHook):
    conn_name_attr = "haproxy_conn_id"
    default_conn_name = connections.HAPROXY
    conn_type = "haproxy"
    hook_name = "HAProxy runtime API"

    def __init__(self, haproxy_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.haproxy_conn_id = haproxy_conn_id

    def get_conn(self) -> HAProxyRuntimeRouter:
        conn = self.get_connection(self.haproxy_conn_id)
        extra = conn.extra_dejson
        if not extra.get("socket_path") and not (conn.host and conn.port):
            raise ValueError(
                f"Connection {self.haproxy_conn_id!r} needs extra.socket_path or host and port of the runtime API"
            )
        return HAProxyRuntimeRouter(
            backend=extra.get("backend", "app"),
            blue_server=extra.get("blue_server", "blue"),
            green_server=extra.get("green_server", "green"),
            socket_path=extra.get("socket_path"),
            host=conn.host,
            port=conn.port,
        )

    @cached_property
    def router(self) -> HAProxyRuntimeRouter:
        return self.get_conn()

    @cached_property
    def frontend_url(self) -> str:
        url = self.get_connection(self.haproxy_conn_id).extra_dejson.get("frontend_url")
        if not url:
            raise ValueError(f"Connection {self.haproxy_conn_id!r} has no extra.frontend_url")
        return str(url).rstrip("/")

    def describe(self) -> str:
        return f"HAProxy (Connection {self.haproxy_conn_id})"

    def read_weights(self) -> RouterWeights:
        return self.router.read_weights()

    def set_green_percent(self, percent: int) -> RouterWeights:
        return self.router.set_green_percent(percent)

    def server_states(self) -> dict[str, str]:
        return self.router.server_states()
