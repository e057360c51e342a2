"""The stages drive the router their plan chose: with include/plans/kubernetes.yaml (router:
gateway_api) every task below patches the HTTPRoute through the real GatewayAPIHook and
KubernetesHook, the API answered by the fake server at urllib3's pool (tests/fake_kubernetes_api.py),
and never touches HAProxy."""

from __future__ import annotations

from typing import Any

import pytest

from cutover_kit.plan import load_plan
from cutover_kit.stages import blue_green_setup, emergency_rollback, rollback, traffic_migration
from tests.fake_kubernetes_api import FakeAPIServer, install

PLAN_TASK = "stage_01_deployment_readiness.validate_plan"


class FakeTI:
    def __init__(self, xcoms: dict[str, Any]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.xcoms.get(task_ids)


@pytest.fixture
def api(monkeypatch) -> FakeAPIServer:
    server = install(monkeypatch, "kubernetes_default")  # the kubernetes plan's Connection
    ti = FakeTI({PLAN_TASK: load_plan("kubernetes").to_dict()})
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"ti": ti, "params": {}, "run_id": "manual__1"})
    monkeypatch.setattr(traffic_migration, "ensure_not_stopped", lambda action: None)
    monkeypatch.setattr(traffic_migration, "record_step_progress", lambda label: None)

    def no_haproxy(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a gateway_api plan must never build the HAProxy router")

    monkeypatch.setattr("cutover_kit.hooks.haproxy.HAProxyHook", no_haproxy)
    return server


def test_a_step_patches_the_httproute(api):
    result = traffic_migration.set_traffic(25, PLAN_TASK)
    assert result["weights"] == {"blue": 75, "green": 25}
    assert api.weights() == {"storefront-blue": 75, "storefront-green": 25}


def test_stage_9_reads_health_from_the_cluster_and_puts_green_at_zero(api):
    traffic_migration.set_traffic(5, PLAN_TASK)
    result = blue_green_setup.blue_green_setup(PLAN_TASK)
    assert result["weights"] == {"blue": 100, "green": 0}
    assert "blue UP (2/2 endpoints of Service storefront-blue ready)" in result["reason"]


def test_the_rollback_and_the_red_button_put_the_route_back_on_blue(api):
    traffic_migration.set_traffic(50, PLAN_TASK)
    assert rollback.route_all_to_blue(plan_task_id=PLAN_TASK)["weights"] == {"blue": 100, "green": 0}
    traffic_migration.set_traffic(50, PLAN_TASK)
    assert emergency_rollback.route_all_to_blue(router_plan="kubernetes")["weights"] == {"blue": 100, "green": 0}
    assert api.weights() == {"storefront-blue": 100, "storefront-green": 0}
    assert len(api.patches()) == 4
