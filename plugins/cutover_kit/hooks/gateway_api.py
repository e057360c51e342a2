"""GatewayAPIHook: the gateway_api router behind a Kubernetes Connection (default ``kubernetes_default``).

The cncf-kubernetes provider's KubernetesHook reads the Connection (``extra.in_cluster``,
``extra.kube_config_path`` or ``extra.kube_config``, ``extra.cluster_context``) and builds the
Kubernetes Python client; its ``custom_object_client`` patches and reads the HTTPRoute (the hook
itself has no custom-object patch), and a DiscoveryV1Api on the same ``api_client`` reads the
backends' EndpointSlices. The routing logic is :class:`~cutover_kit.routing.gateway_api.GatewayAPIRouter`.
Nothing is fetched at construction: the Connection is read when the router is first used.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from cutover_kit import connections
from cutover_kit.routing import RouterWeights
from cutover_kit.routing.gateway_api import GatewayAPIRouter, HTTPRouteRef


class GatewayAPIHook:
    def __init__(self, route: HTTPRouteRef, kubernetes_conn_id: str = connections.KUBERNETES) -> None:
        self.route = route
        self.kubernetes_conn_id = kubernetes_conn_id

    @classmethod
    def from_plan_section(cls, section: Mapping[str, Any]) -> GatewayAPIHook:
        """From a plan's validated ``gateway_api`` section."""
        return cls(HTTPRouteRef.from_plan_section(section),
                   section.get("kubernetes_conn_id") or connections.KUBERNETES)

    @cached_property
    def kubernetes(self) -> Any:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    @cached_property
    def router(self) -> GatewayAPIRouter:
        from kubernetes.client import DiscoveryV1Api

        return GatewayAPIRouter(
            route=self.route,
            custom_objects=self.kubernetes.custom_object_client,
            endpoint_slices=DiscoveryV1Api(api_client=self.kubernetes.api_client),
        )

    def describe(self) -> str:
        return f"{self.route.describe()} (Connection {self.kubernetes_conn_id})"

    def read_weights(self) -> RouterWeights:
        return self.router.read_weights()

    def set_green_percent(self, percent: int) -> RouterWeights:
        return self.router.set_green_percent(percent)

    def server_states(self) -> dict[str, str]:
        return self.router.server_states()
