"""A fake Kubernetes API server at urllib3's PoolManager, for tests of the gateway_api router: the
real KubernetesHook and Kubernetes client run; only the HTTP pool answers, from API-server answers
on file (tests/unit/cutover_kit/routing/data/, written in the API's format, not captured from a
live cluster), applying merge patches as the API server does. Every PATCH body, and the route it
produces, is checked against the vendored Gateway API v1 HTTPRoute schema."""

from __future__ import annotations

import json
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import urllib3

from tests.kubernetes_schemas import REPO_ROOT, gateway_validator, merge_patch

DATA = REPO_ROOT / "tests" / "unit" / "cutover_kit" / "routing" / "data"
SERVER = "https://127.0.0.1:6443"
ROUTE_PATH = "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/storefront"
SLICES_PATH = "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"
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


def install(monkeypatch: pytest.MonkeyPatch, conn_id: str) -> FakeAPIServer:
    """The fake server behind every urllib3 pool, and Connection `conn_id` pointing at it."""
    server = FakeAPIServer(on_file("httproute_storefront.json"))
    monkeypatch.setattr(urllib3.PoolManager, "request", lambda pool, *args, **kwargs: server.request(*args, **kwargs))
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "kubernetes", "extra": {"kube_config": KUBECONFIG}}))
    return server
