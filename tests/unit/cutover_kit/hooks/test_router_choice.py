"""Which router a run drives: the plan's `router` decides, for the tasks, the gate trigger's reflex
rollback and the emergency DAG alike; and stage 1 resolves that router's Connection."""

from __future__ import annotations

from cutover_kit import connections
from cutover_kit.hooks.gateway_api import GatewayAPIHook
from cutover_kit.hooks.haproxy import HAProxyHook
from cutover_kit.hooks.levers import connected_levers, router_for_plan
from cutover_kit.plan import load_plan
from cutover_kit.routing.gateway_api import HTTPRouteRef


def test_the_plan_chooses_the_router():
    haproxy = router_for_plan(load_plan("default"), haproxy_conn_id="haproxy_other")
    assert isinstance(haproxy, HAProxyHook) and haproxy.haproxy_conn_id == "haproxy_other"
    gateway = router_for_plan(load_plan("kubernetes"))
    assert isinstance(gateway, GatewayAPIHook)
    assert gateway.route == HTTPRouteRef("shop", "storefront", "storefront-blue", "storefront-green")
    assert gateway.describe() == "HTTPRoute shop/storefront (Connection kubernetes_default)"
    assert isinstance(router_for_plan(None), HAProxyHook)  # no plan: the default router


def test_the_reflex_levers_pull_the_plans_router():
    assert isinstance(connected_levers(plan=load_plan("kubernetes")).router, GatewayAPIHook)
    assert isinstance(connected_levers().router, HAProxyHook)


def test_a_plan_may_name_its_own_kubernetes_connection():
    plan = load_plan("kubernetes")
    section = {**plan.gateway_api, "kubernetes_conn_id": "kubernetes_prod"}
    assert GatewayAPIHook.from_plan_section(section).kubernetes_conn_id == "kubernetes_prod"


def test_stage_1_resolves_the_connection_of_the_plans_router():
    assert connections.required_connections("haproxy") == connections.REQUIRED_CONNECTIONS
    gateway = connections.required_connections("gateway_api", "kubernetes_prod")
    assert connections.HAPROXY not in gateway and "kubernetes_prod" in gateway
    assert len(gateway) == len(connections.REQUIRED_CONNECTIONS)
    assert connections.KUBERNETES in connections.required_connections("gateway_api")
