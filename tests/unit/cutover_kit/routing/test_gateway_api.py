"""GatewayAPIRouter's own rules on a route (which rules split, what a patch carries, what it refuses),
on the HTTPRoute answers on file. The request layer below the KubernetesHook is exercised in
tests/unit/cutover_kit/hooks/test_gateway_api_hook.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cutover_kit.routing import RouterError, RouterWeights
from cutover_kit.routing.gateway_api import GatewayAPIRouter, HTTPRouteRef
from tests.kubernetes_schemas import gateway_validator, merge_patch

DATA = Path(__file__).resolve().parent / "data"
REF = HTTPRouteRef(namespace="shop", name="storefront", blue_backend="storefront-blue", green_backend="storefront-green")


def route(name: str = "httproute_storefront.json") -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


class Unreachable:
    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("[Errno 111] Connection refused")


ROUTER = GatewayAPIRouter(REF, custom_objects=Unreachable())


def test_the_patch_is_a_valid_partial_httproute_and_its_result_a_valid_httproute():
    document = route("httproute_two_rules.json")
    body = ROUTER.patch_body(document, RouterWeights(blue=95, green=5))
    assert list(body) == ["metadata", "spec"] and body["metadata"] == {"resourceVersion": "51007"}
    assert list(gateway_validator("HTTPRoute", partial=True).iter_errors(body)) == []
    patched = merge_patch(document, body)
    assert list(gateway_validator("HTTPRoute").iter_errors(patched)) == []
    assert ROUTER.weights_of(patched) == RouterWeights(blue=95, green=5)


def test_the_schema_check_has_teeth():
    body = ROUTER.patch_body(route(), RouterWeights(blue=95, green=5))
    body["spec"]["rules"][0]["backendRefs"][1]["weight"] = 1_000_001  # above the CRD's maximum
    del body["spec"]["rules"][0]["backendRefs"][0]["name"]  # a backendRef must name its Service
    errors = sorted(e.message for e in gateway_validator("HTTPRoute", partial=True).iter_errors(body))
    assert errors == ["'name' is a required property", "1000001 is greater than the maximum of 1000000"]


def test_no_patch_when_every_rule_is_already_there():
    assert ROUTER.patch_body(route(), RouterWeights(blue=100, green=0)) is None


def test_a_backend_ref_without_weight_counts_one():
    document = route()
    for ref in document["spec"]["rules"][0]["backendRefs"]:
        del ref["weight"]
    assert ROUTER.weights_of(document) == RouterWeights(blue=1, green=1)  # 50/50, as the spec says


@pytest.mark.parametrize("change, message", [
    (lambda rules: rules[0]["backendRefs"].pop(1), "rule 0 names blue 'storefront-blue' 1 time\\(s\\) and green 'storefront-green' 0 time\\(s\\)"),
    (lambda rules: rules[0]["backendRefs"].append({"name": "storefront-canary", "port": 80, "weight": 10}),
     "rule 0 also sends traffic to storefront-canary; green's percentage would be wrong"),
    (lambda rules: [ref.update(name="shop-" + ref["name"]) for ref in rules[0]["backendRefs"]],
     "no rule has backendRefs to 'storefront-blue' and 'storefront-green'"),
])
def test_routes_the_percentages_would_misdescribe_are_refused(change, message):
    document = route()
    change(document["spec"]["rules"])
    with pytest.raises(RouterError, match=f"HTTPRoute shop/storefront: {message}"):
        ROUTER.weights_of(document)


def test_a_third_backend_at_weight_zero_is_allowed():
    document = route()
    document["spec"]["rules"][0]["backendRefs"].append({"name": "storefront-canary", "port": 80, "weight": 0})
    assert ROUTER.weights_of(document) == RouterWeights(blue=100, green=0)


def test_rules_that_disagree_are_an_unknown_state():
    document = route("httproute_two_rules.json")
    document["spec"]["rules"][0]["backendRefs"][1]["weight"] = 5
    with pytest.raises(RouterError, match=r"rules disagree on the split \(rule 0 \{'blue': 100, 'green': 5\}, rule 1 \{'blue': 100, 'green': 0\}\)"):
        ROUTER.weights_of(document)


def test_a_backend_of_another_kind_is_not_the_service():
    document = copy.deepcopy(route())
    document["spec"]["rules"][0]["backendRefs"][1].update(group="example.com", kind="Bucket")
    with pytest.raises(RouterError, match="green 'storefront-green' 0 time"):
        ROUTER.weights_of(document)


def test_an_unreachable_api_server_is_a_router_error():
    with pytest.raises(RouterError, match=r"HTTPRoute shop/storefront: read failed: ConnectionRefusedError: \[Errno 111\]"):
        ROUTER.read_weights()


def test_the_route_ref_comes_from_the_plan_section():
    section = {"namespace": "shop", "http_route": "storefront", "blue_backend": "storefront-blue", "green_backend": "storefront-green"}
    assert HTTPRouteRef.from_plan_section(section) == REF
