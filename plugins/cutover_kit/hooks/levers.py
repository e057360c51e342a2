"""The clients the actions layer (``cutover_kit.actions``) is given, built from Connections: the
router, the flag store of a backend, the apps' own flag reports, the shared emergency stop and the
gate heartbeat.
Tasks and the gate trigger both build them here, so they pull exactly the same levers."""

from __future__ import annotations

from typing import Any

from cutover_kit import connections
from cutover_kit.actions.rollback import Levers
from cutover_kit.control import EmergencyStop
from cutover_kit.dead_man import GateHeartbeat


def app_reports(conn_ids: tuple[str, ...] = connections.APP_CONN_IDS, timeout_seconds: float = 1.0) -> dict[str, Any]:
    """Each app's GET /__flags answer (a dict), or why there is none (a string)."""
    from cutover_kit.hooks.service import ServiceHook

    reports: dict[str, Any] = {}
    for conn_id in conn_ids:
        probe = ServiceHook(conn_id, timeout_seconds=timeout_seconds).probe("GET", "/__flags")
        if probe.status == 200 and isinstance(probe.body, dict):
            reports[conn_id] = probe.body
        else:
            reports[conn_id] = probe.error or f"HTTP {probe.status}: {str(probe.body)[:120]}"
    return reports


def connected_levers(haproxy_conn_id: str = connections.HAPROXY) -> Levers:
    """Router from `haproxy_conn_id`, flag stores from their default Connections, reports from the apps.
    Nothing is fetched yet: each Connection is read when its lever is pulled."""
    from cutover_kit.hooks.flags import flag_store
    from cutover_kit.hooks.haproxy import HAProxyHook

    return Levers(router=HAProxyHook(haproxy_conn_id), open_flag_store=flag_store, read_app_reports=app_reports)


def read_emergency_stop(state_conn_id: str = connections.REDIS) -> EmergencyStop | None:
    """The latched stop or None; CutoverStateError when the state cannot be read."""
    from cutover_kit.hooks.cutover_state import CutoverStateHook

    return CutoverStateHook(state_conn_id).emergency_stop()


def write_gate_heartbeat(heartbeat: GateHeartbeat, state_conn_id: str = connections.REDIS) -> None:
    """Persist a gate's poll (CutoverStateError when the state cannot be written)."""
    from cutover_kit.hooks.cutover_state import CutoverStateHook

    CutoverStateHook(state_conn_id).write_gate_heartbeat(heartbeat)


def read_gate_heartbeat(state_conn_id: str = connections.REDIS) -> GateHeartbeat | None:
    """The latest gate heartbeat or None; CutoverStateError when the state cannot be read."""
    from cutover_kit.hooks.cutover_state import CutoverStateHook

    return CutoverStateHook(state_conn_id).gate_heartbeat()
