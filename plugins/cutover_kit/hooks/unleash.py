"""UnleashHook: Connection ``unleash_default`` -> an UnleashFlagStore on that server's admin API.

Connection (conn_type http): host and port of unleash-server (or ``extra.base_url``), password =
an admin API token, ``extra.project`` (default "default") and ``extra.environment`` (default
"development"). The Connection is fetched lazily in get_conn(), never at import or DAG parse;
the flag stores of backend "unleash" are built here (cutover_kit.hooks.flags.flag_store).
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.flags.model import FlagStoreError


class UnleashHook(BaseHook):
    conn_name_attr = "unleash_conn_id"
    default_conn_name = connections.UNLEASH
    conn_type = "http"
    hook_name = "Unleash (admin API)"

    def __init__(self, unleash_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.unleash_conn_id = unleash_conn_id

    def get_conn(self):
        # Imported only when the unleash backend is used: the file backend needs none of it.
        from cutover_kit.flags.unleash_store import UnleashFlagStore

        try:
            conn = self.get_connection(self.unleash_conn_id)
        except Exception as error:  # AirflowNotFoundException and secrets-backend errors alike
            raise FlagStoreError(f"flag backend unleash: Connection {self.unleash_conn_id!r} unavailable: {error}") from error
        return UnleashFlagStore.from_connection(conn)
