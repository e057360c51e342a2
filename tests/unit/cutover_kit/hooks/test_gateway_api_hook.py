"""GatewayAPIHook end to end below the hook: the cncf-kubernetes provider's KubernetesHook builds the
Kubernetes Python client from an AIRFLOW_CONN_* Connection, and only urllib3's PoolManager is
replaced, by a fake API server that answers from API-server answers on file
(tests/unit/cutover_kit/routing/data/, written in the API's format, not captured from a live
cluster) and applies merge patches as the API server does. Every PATCH body is checked against
the vendored Gateway API v1 HTTPRoute schema, and so is the route it produces."""

from __future__ import annotations

import copy
import json
import logging
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import urllib3

from cutover_kit.hooks.gateway_api import GatewayAPIHook
from cutover_kit.routing import RouterError, RouterWeights
from cutover_kit.routing.gateway_api import HTTPRouteRef
from tests.kubernetes_schemas import gateway_validator, merge_patch

DATA = Path(__file__).resolve().parents[1] / "routing" / "data"
SERVER = "https://127.0.0.1:6443"
ROUTE_PATH = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/storefront"
SLICES_PATH = "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"
CONN_ID = "kubernetes_recorded"
STOREFRONT = HTTPRouteRef(namespace="shop", name="storefront", blue_backend="storefront-blue", green_backend="storefront-green")
# A kubeconfig as a Connection's extra.kube_config; the token is a placeholder, never a credential.
KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "recorded",
    "clusters": [{"name": "recorded", "cluster": {"server": SERVER, "insecure-skip-tls-verify": True}}],
    "users": [{"name": "airflow", "user": {"token": "placeholder-not-a-credential"}}],  # pragma: allowlist secret
    "contexts": [{"name": "recorded", "context": {"cluster": "recorded", "user": "airflow", "namespace": "shop"}}],
}


def on_file(name: str) -> Any:
    return json.loads((DATA / name).read_text())


class FakeAPIServer:
    """What urllib3 would have fetched from the API server; records every request."""

    def __init__(self, route: dict[str, Any] | None) -> None:
        self.route = route
        self.slices = {"storefront-blue": on_file("endpointslices_blue.json"),
                       "storefront-green": on_file("endpointslices_blue.json")}
        self.requests: list[dict[str, Any]] = []
        self.patch_failures: list[str] = []  # Status files the next PATCHes answer instead
        self.sneak_in: dict[str, Any] | None = None  # a change "someone else" makes just before our first patch
        self.patch_validator = gateway_validator("HTTPRoute", partial=True)
        self.route_validator = gateway_validator("HTTPRoute")

    def answer(self, status: int, document: Any) -> urllib3.HTTPResponse:
        return urllib3.HTTPResponse(body=json.dumps(document).encode(), status=status, reason=HTTPStatus(status).phrase,
                                    headers={"Content-Type": "application/json"}, preload_content=True)

    def status_answer(self, name: str) -> urllib3.HTTPResponse:
        document = on_file(name)
        return self.answer(document["code"], document)

    def request(self, method: str, url: str, body: Any = None, fields: Any = None, headers: Any = None, **_: Any) -> urllib3.HTTPResponse:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == SERVER, url
        assert headers["authorization"] == "Bearer placeholder-not-a-credential"  # pragma: allowlist secret
        query = dict(parse_qsl(parts.query)) | dict(fields or [])
        sent = json.loads(body) if body else None
        self.requests.append({"method": method, "path": parts.path, "query": query, "body": sent,
                              "content_type": headers.get("Content-Type")})
        if parts.path == ROUTE_PATH and method == "GET":
            return self.answer(200, self.route) if self.route else self.status_answer("status_404_httproute.json")
        if parts.path == ROUTE_PATH and method == "PATCH":
            return self.patch(sent, headers)
        if parts.path == SLICES_PATH and method == "GET":
            service = query["labelSelector"].removeprefix("kubernetes.io/service-name=")
            return self.answer(200, self.slices[service])
        raise AssertionError(f"unexpected request {method} {url}")

    def patch(self, body: dict[str, Any], headers: dict[str, str]) -> urllib3.HTTPResponse:
        assert headers["Content-Type"] == "application/merge-patch+json"
        problems = [f"{e.json_path}: {e.message}" for e in self.patch_validator.iter_errors(body)]
        assert problems == [], f"PATCH body is not a valid partial HTTPRoute: {problems}"
        if self.sneak_in is not None:
            self.route, self.sneak_in = merge_patch(self.route, self.sneak_in), None
            self.route["metadata"]["resourceVersion"] = str(int(self.route["metadata"]["resourceVersion"]) + 1)
        if self.patch_failures:
            return self.status_answer(self.patch_failures.pop(0))
        if body["metadata"]["resourceVersion"] != self.route["metadata"]["resourceVersion"]:
            return self.status_answer("status_409_conflict.json")
        patched = merge_patch(self.route, body)
        patched["metadata"]["resourceVersion"] = str(int(self.route["metadata"]["resourceVersion"]) + 1)
        patched["metadata"]["generation"] += 1
        problems = [f"{e.json_path}: {e.message}" for e in self.route_validator.iter_errors(patched)]
        assert problems == [], f"the patched HTTPRoute is invalid: {problems}"
        self.route = patched
        return self.answer(200, patched)

    def patches(self) -> list[dict[str, Any]]:
        return [request["body"] for request in self.requests if request["method"] == "PATCH"]

    def weights(self, rule: int = -1) -> dict[str, int]:
        return {ref["name"]: ref["weight"] for ref in self.route["spec"]["rules"][rule]["backendRefs"]}


@pytest.fixture
def api(monkeypatch) -> FakeAPIServer:
    server = FakeAPIServer(on_file("httproute_storefront.json"))
    monkeypatch.setattr(urllib3.PoolManager, "request", lambda pool, *args, **kwargs: server.request(*args, **kwargs))
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "kubernetes", "extra": {"kube_config": KUBECONFIG}}))
    return server


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
