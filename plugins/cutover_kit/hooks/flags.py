"""Flag stores behind Connections: the plan's ``flag_backend`` chooses which.

- "file": Connection ``flagd_default`` (conn_type "flagd", ``extra.path`` = the flagd JSON file
  the apps evaluate) -> :class:`~cutover_kit.flags.flagd_file.FlagdFileStore`.
- "unleash": Connection ``unleash_default`` -> :class:`~cutover_kit.hooks.unleash.UnleashHook`
  (an UnleashFlagStore on the server's admin API), imported only then.

Anything else is refused with FlagStoreError naming the backend and the choices. Connections are
fetched when a store is asked for, never at import or DAG parse.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.flags.model import FLAG_BACKENDS, FlagStore, FlagStoreError

DEFAULT_CONN_IDS = {"file": connections.FLAGD, "unleash": connections.UNLEASH}


class FlagdFileHook(BaseHook):
    conn_name_attr = "flagd_conn_id"
    default_conn_name = connections.FLAGD
    conn_type = "flagd"
    hook_name = "flagd flag file"

    def __init__(self, flagd_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.flagd_conn_id = flagd_conn_id

    def get_conn(self) -> FlagStore:
        from cutover_kit.flags.flagd_file import FlagdFileStore

        try:
            conn = self.get_connection(self.flagd_conn_id)
        except Exception as error:  # AirflowNotFoundException and secrets-backend errors alike
            raise FlagStoreError(f"flag backend file: Connection {self.flagd_conn_id!r} unavailable: {error}") from error
        path = conn.extra_dejson.get("path")
        if not path or not isinstance(path, str):
            raise FlagStoreError(f"Connection {self.flagd_conn_id!r} has no extra.path (the flagd JSON file the apps read)")
        return FlagdFileStore(path)


def check_backend(backend: str) -> str:
    if backend not in FLAG_BACKENDS:
        raise FlagStoreError(f"unknown flag backend {backend!r}; expected one of {', '.join(FLAG_BACKENDS)}")
    return backend


def flag_store(backend: str, conn_id: str | None = None) -> FlagStore:
    """The FlagStore of `backend` through its Connection (default id per backend)."""
    check_backend(backend)
    conn_id = conn_id or DEFAULT_CONN_IDS[backend]
    if backend == "file":
        return FlagdFileHook(conn_id).get_conn()
    from cutover_kit.hooks.unleash import UnleashHook

    return UnleashHook(conn_id).get_conn()
