"""Flag stores behind Connections: the plan's ``flag_backend`` chooses which.

- "file": Connection ``flagd_default`` (conn_type "flagd", ``extra.path`` = the flagd JSON file
  the apps evaluate) -> :class:`~cutover_kit.flags.flagd_file.FlagdFileStore`.
- "unleash": Connection ``unleash_default`` ->
  ``cutover_kit.flags.unleash_store.UnleashFlagStore.from_connection(conn)``, imported only then.

Anything else is refused with FlagStoreError naming the backend and the choices. Connections are
fetched when a store is asked for, never at import or DAG parse.
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from cutover_kit.flags.model import FlagStore, FlagStoreError

FLAG_BACKENDS = ("file", "unleash")
DEFAULT_CONN_IDS = {"file": "flagd_default", "unleash": "unleash_default"}


class FlagdFileHook(BaseHook):
    conn_name_attr = "flagd_conn_id"
    default_conn_name = "flagd_default"
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
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as error:  # AirflowNotFoundException and secrets-backend errors alike
        raise FlagStoreError(f"flag backend unleash: Connection {conn_id!r} unavailable: {error}") from error
    from cutover_kit.flags.unleash_store import UnleashFlagStore

    return UnleashFlagStore.from_connection(conn)
