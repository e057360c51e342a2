"""HAProxyHook: the traffic router behind Connection ``haproxy_default``.

Connection fields: ``extra.socket_path`` (runtime API unix socket) or host/port of an
``ipv4@`` stats socket; ``extra.backend`` (default "app"), ``extra.blue_server`` and
``extra.green_server`` (default "blue"/"green"), ``extra.frontend_url`` (where clients enter),
``extra.cohort_map`` (the user id -> cohort map's file name as HAProxy's configuration gives it)
and ``extra.routing_map`` (the map holding the "user_routing" switch); absent = no routing by user.
"""

from __future__ import annotations

from functools import cached_property

from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.routing import CohortMapUpdate, RouterWeights
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
            cohort_map=extra.get("cohort_map"),
            routing_map=extra.get("routing_map"),
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

    def user_routing_enabled(self) -> bool:
        return self.router.user_routing_enabled()

    def set_user_routing(self, enabled: bool) -> bool:
        return self.router.set_user_routing(enabled)

    def read_cohort_map(self) -> dict[str, str]:
        return self.router.read_cohort_map()

    def replace_cohort_map(self, entries: dict[str, str]) -> CohortMapUpdate:
        return self.router.replace_cohort_map(entries)

    def clear_cohort_map(self) -> CohortMapUpdate:
        return self.router.clear_cohort_map()
