"""GatewayAPIHook end to end below the hook: the cncf-kubernetes provider's KubernetesHook builds the
Kubernetes Python client from an AIRFLOW_CONN_* Connection, and only urllib3's PoolManager is
replaced, by the fake API server of tests/fake_kubernetes_api.py (answers on file, merge patches
applied as the API server does, every PATCH body checked against the HTTPRoute schema)."""

from __future__ import annotations

import copy
import logging

import pytest

from cutover_kit.hooks.gateway_api import GatewayAPIHook
from cutover_kit.routing import RouterError, RouterWeights
from cutover_kit.routing.gateway_api import HTTPRouteRef
from tests.fake_kubernetes_api import ROUTE_PATH, SLICES_PATH, FakeAPIServer, install, on_file

CONN_ID = "kubernetes_recorded"
STOREFRONT = HTTPRouteRef(namespace="shop", name="storefront", blue_backend="storefront-blue", green_backend="storefront-green")


@pytest.fixture
def api(monkeypatch) -> FakeAPIServer:
    return install(monkeypatch, CONN_ID)


def hook() -> GatewayAPIHook:
    return GatewayAPIHook(STOREFRONT, kubernetes_conn_id=CONN_ID)


def test_reads_the_weights_of_the_route(api):
    assert hook().read_weights() == RouterWeights(blue=100, green=0)
    (request,) = api.requests
    assert (request["method"], request["path"]) == ("GET", ROUTE_PATH)


def test_sets_green_percent_with_one_merge_patch_and_reads_it_back(api, caplog):
    with caplog.at_level(logging.INFO):
        assert hook().set_green_percent(25) == RouterWeights(blue=75, green=25)
    assert [(r["method"], r["path"]) for r in api.requests] == [("GET", ROUTE_PATH), ("PATCH", ROUTE_PATH), ("GET", ROUTE_PATH)]
    (patch,) = api.patches()
    assert patch["metadata"] == {"resourceVersion": "48211"}  # optimistic concurrency: refused if the route moved
    assert api.weights() == {"storefront-blue": 75, "storefront-green": 25}
    # The rest of the rule travels unchanged (a merge patch replaces the list whole).
    assert patch["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert "HTTPRoute shop/storefront patched to blue 75 / green 25 (resourceVersion 48211)" in caplog.text


def test_a_route_already_at_the_target_is_not_patched(api, caplog):
    router = hook()
    router.set_green_percent(5)
    with caplog.at_level(logging.INFO):
        assert router.set_green_percent(5) == RouterWeights(blue=95, green=5)
    assert len(api.patches()) == 1
    assert "already at blue 95 / green 5: nothing to patch" in caplog.text


def test_every_rule_that_splits_moves_in_the_same_patch(api):
    api.route = on_file("httproute_two_rules.json")
    assert hook().set_green_percent(50) == RouterWeights(blue=50, green=50)
    (patch,) = api.patches()
    assert [rule["backendRefs"][1]["weight"] for rule in patch["spec"]["rules"]] == [50, 50]
    assert patch["spec"]["rules"][0]["filters"][0]["type"] == "RequestHeaderModifier"  # kept as it was
    assert api.weights(0) == api.weights(1) == {"storefront-blue": 50, "storefront-green": 50}


def test_a_conflict_is_read_again_and_retried(api, caplog):
    api.sneak_in = {"metadata": {"labels": {"touched-by": "someone-else"}}}  # the route moves under our first patch
    with caplog.at_level(logging.WARNING):
        assert hook().set_green_percent(5) == RouterWeights(blue=95, green=5)
    assert [p["metadata"]["resourceVersion"] for p in api.patches()] == ["48211", "48212"]
    assert api.route["metadata"]["labels"]["touched-by"] == "someone-else"  # their change survives ours
    assert "changed while we patched it (409 Conflict): reading it again" in caplog.text


def test_a_forbidden_patch_is_a_router_error_naming_the_route(api):
    api.patch_failures = ["status_403_forbidden.json"]
    with pytest.raises(RouterError, match=r"HTTPRoute shop/storefront: patch to blue 0 / green 100 failed: HTTP 403 Forbidden: .*"
                       r"system:serviceaccount:airflow:airflow-worker\" cannot patch resource \"httproutes\""):
        hook().set_green_percent(100)
    assert api.weights() == {"storefront-blue": 100, "storefront-green": 0}


def test_conflicts_that_never_end_give_up(api):
    api.patch_failures = ["status_409_conflict.json"] * 3
    with pytest.raises(RouterError, match="HTTP 409"):
        hook().set_green_percent(5)
    assert len(api.patches()) == 3


def test_a_missing_route_is_a_router_error(api):
    api.route = None
    with pytest.raises(RouterError, match=r"HTTPRoute shop/storefront: read failed: HTTP 404 Not Found: .*\"storefront\" not found"):
        hook().read_weights()


def test_server_states_from_the_route_conditions_and_endpoint_slices(api):
    states = hook().server_states()
    assert states == {"blue": "UP (2/2 endpoints of Service storefront-blue ready)",
                      "green": "UP (2/2 endpoints of Service storefront-green ready)"}
    slice_queries = [r["query"]["labelSelector"] for r in api.requests if r["path"] == SLICES_PATH]
    assert slice_queries == ["kubernetes.io/service-name=storefront-blue", "kubernetes.io/service-name=storefront-green"]
    api.slices["storefront-green"] = on_file("endpointslices_green_unready.json")
    assert hook().server_states()["green"] == "DOWN (0/1 endpoints of Service storefront-green ready)"


def test_a_route_its_gateway_refused_is_down_for_both(api):
    refused = copy.deepcopy(api.route)
    refused["status"]["parents"][0]["conditions"][1].update(status="False", reason="BackendNotFound")
    api.route = refused
    states = hook().server_states()
    assert all(state.startswith("DOWN (route: Gateway storefront: ResolvedRefs False (BackendNotFound))") for state in states.values())
