"""UnleashHook: Connection ``unleash_default`` -> an UnleashFlagStore on that server's admin API.

Connection (conn_type http): host and port of unleash-server (or ``extra.base_url``), password =
an admin API token, ``extra.project`` (default "default") and ``extra.environment`` (default
"development"). The Connection is fetched lazily in get_conn(), never at import or DAG parse.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from cutover_kit.flags.unleash_store import UnleashFlagStore


class UnleashHook(BaseHook):
    conn_name_attr = "unleash_conn_id"
    default_conn_name = "unleash_default"
    conn_type = "http"
    hook_name = "Unleash (admin API)"

    def __init__(self, unleash_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.unleash_conn_id = unleash_conn_id

    def get_conn(self) -> UnleashFlagStore:
        return UnleashFlagStore.from_connection(self.get_connection(self.unleash_conn_id))
