"""The clients the actions layer (``cutover_kit.actions``) is given, built from Connections: the
router, the flag store of a backend, the apps' own flag reports, the shared emergency stop and the
gate heartbeat.
Tasks and the gate trigger both build them here, so they pull exactly the same levers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cutover_kit import connections
from cutover_kit.actions.rollback import Levers
from cutover_kit.control import EmergencyStop
from cutover_kit.dead_man import GateHeartbeat
from cutover_kit.routing import GATEWAY_API_ROUTER

if TYPE_CHECKING:
    from cutover_kit.plan import CutoverPlan
    from cutover_kit.routing import TrafficRouter


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


def router_for_plan(plan: CutoverPlan | None, haproxy_conn_id: str = connections.HAPROXY) -> TrafficRouter:
    """The router the plan chose (plan field ``router``): the HTTPRoute of its ``gateway_api``
    section through the Kubernetes Connection, or HAProxy behind `haproxy_conn_id` (also when there
    is no plan: the haproxy router is the default). Nothing is fetched until the router is used."""
    if plan is not None and plan.router == GATEWAY_API_ROUTER:
        from cutover_kit.hooks.gateway_api import GatewayAPIHook

        return GatewayAPIHook.from_plan_section(plan.gateway_api or {})
    from cutover_kit.hooks.haproxy import HAProxyHook

    return HAProxyHook(haproxy_conn_id)


def connected_levers(haproxy_conn_id: str = connections.HAPROXY, plan: CutoverPlan | None = None) -> Levers:
    """The plan's router (router_for_plan), flag stores from their default Connections, reports from
    the apps. Nothing is fetched yet: each Connection is read when its lever is pulled."""
    from cutover_kit.hooks.flags import flag_store

    return Levers(router=router_for_plan(plan, haproxy_conn_id), open_flag_store=flag_store, read_app_reports=app_reports)


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
