"""StageInstanceHook: the Connection of one color's stage instance (``app_blue_loadtest``,
``app_green_loadtest``) read into a :class:`cutover_kit.load.instances.StageInstance`; starting,
waiting and stopping are that module's (no Airflow there)."""

from __future__ import annotations

from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.load.instances import StageInstance, instance_from_connection


class StageInstanceHook(BaseHook):
    conn_name_attr = "stage_conn_id"
    default_conn_name = connections.APP_GREEN_LOADTEST
    conn_type = "http"
    hook_name = "Stage instance (load test and scans)"

    def __init__(self, color: str, stage_conn_id: str | None = None) -> None:
        super().__init__()
        if color not in connections.STAGE_INSTANCE_CONN_IDS:
            raise ValueError(f"color must be blue or green, got {color!r}")
        self.color = color
        self.stage_conn_id = stage_conn_id or connections.STAGE_INSTANCE_CONN_IDS[color]

    def get_conn(self) -> StageInstance:
        conn = self.get_connection(self.stage_conn_id)
        return instance_from_connection(self.color, self.stage_conn_id, conn.host, conn.port, conn.schema,
                                        conn.extra_dejson)
