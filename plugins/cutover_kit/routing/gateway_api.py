"""Gateway API router (no Airflow): traffic split by a Kubernetes HTTPRoute's weighted backendRefs.

An HTTPRoute rule sends each request to one of its backendRefs with probability weight / sum of
weights (weights are proportional; 0 = no traffic; a backendRef without a weight counts 1). The
cutover's weights always sum to ``TOTAL_WEIGHT`` (blue 95 / green 5), so a percentage maps exactly.

Every rule of the route that names the blue or the green Service is moved together, in one JSON
merge patch of ``spec.rules`` carrying the ``resourceVersion`` that was read: the API server
applies it atomically (no moment where a rule has lost one weight but not gained the other) and
answers 409 if someone changed the route in between, and then the change is re-read and retried.
A route already at the target is not patched at all (idempotent), and every change is verified by
reading the route back.

The clients are the Kubernetes Python client's ``CustomObjectsApi`` (``custom_objects``) and
``DiscoveryV1Api`` (``endpoint_slices``), which the Airflow side gets from the cncf-kubernetes
provider's KubernetesHook (:mod:`cutover_kit.hooks.gateway_api`). Nothing here has met a live
cluster yet: it is tested against the client's request layer with API-server answers on file.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from cutover_kit.routing import RouterError, RouterWeights, weights_for_green_percent

log = logging.getLogger(__name__)

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
PLURAL = "httproutes"
#: A backendRef with no weight gets this one (Gateway API spec, HTTPBackendRef.weight).
DEFAULT_BACKEND_WEIGHT = 1
#: Attempts when the route changed between our read and our patch (HTTP 409 Conflict).
CONFLICT_ATTEMPTS = 3
_SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class CustomObjects(Protocol):
    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str, **kwargs: Any) -> Any: ...

    def patch_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str, body: Any, **kwargs: Any) -> Any: ...


class EndpointSlices(Protocol):
    def list_namespaced_endpoint_slice(self, namespace: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class HTTPRouteRef:
    """Which HTTPRoute splits the traffic, and the Service names of blue's and green's backendRefs."""

    namespace: str
    name: str
    blue_backend: str
    green_backend: str

    @classmethod
    def from_plan_section(cls, section: Mapping[str, Any]) -> HTTPRouteRef:
        """From a plan's validated ``gateway_api`` section."""
        return cls(namespace=section["namespace"], name=section["http_route"],
                   blue_backend=section["blue_backend"], green_backend=section["green_backend"])

    def describe(self) -> str:
        return f"HTTPRoute {self.namespace}/{self.name}"


def _is_service_ref(ref: Mapping[str, Any], service: str) -> bool:
    # group "" and kind Service are the defaults of a backendRef (core Service).
    return ref.get("name") == service and ref.get("group", "") == "" and ref.get("kind", "Service") == "Service"


def _api_failure(what: str, route: HTTPRouteRef, error: Exception) -> RouterError:
    """One line: the HTTP status and the API server's own explanation (its Status message), or the
    transport error when no answer came."""
    status = getattr(error, "status", None)
    if not status:
        return RouterError(f"{route.describe()}: {what} failed: {type(error).__name__}: {error}")
    detail = f"HTTP {status} {getattr(error, 'reason', '') or ''}".rstrip()
    try:
        message = json.loads(getattr(error, "body", None) or "{}").get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return RouterError(f"{route.describe()}: {what} failed: {detail}" + (f": {message}" if message else ""))


@dataclass(frozen=True)
class GatewayAPIRouter:
    """A :class:`~cutover_kit.routing.TrafficRouter` over one HTTPRoute's backendRef weights."""

    route: HTTPRouteRef
    custom_objects: CustomObjects
    endpoint_slices: EndpointSlices | None = None

    # -- reading ---------------------------------------------------------------------------------

    def read_route(self) -> dict[str, Any]:
        try:
            document = self.custom_objects.get_namespaced_custom_object(
                GROUP, VERSION, self.route.namespace, PLURAL, self.route.name)
        except Exception as error:  # noqa: BLE001 - ApiException, urllib3 errors: all mean "unknown"
            raise _api_failure("read", self.route, error) from error
        if not isinstance(document, dict) or not isinstance(document.get("spec"), dict):
            raise RouterError(f"{self.route.describe()}: the API answered {type(document).__name__}, not an HTTPRoute")
        return document

    def split_rules(self, document: Mapping[str, Any]) -> list[int]:
        """Indexes of the rules that split between blue and green; refuses a route the
        percentages would misdescribe (no such rule, a rule with one color only, a third backend
        that takes a share)."""
        rules = document["spec"].get("rules") or []
        split = []
        for index, rule in enumerate(rules):
            refs = rule.get("backendRefs") or []
            blue = [ref for ref in refs if _is_service_ref(ref, self.route.blue_backend)]
            green = [ref for ref in refs if _is_service_ref(ref, self.route.green_backend)]
            if not blue and not green:
                continue
            if len(blue) != 1 or len(green) != 1:
                raise RouterError(
                    f"{self.route.describe()}: rule {index} names blue {self.route.blue_backend!r} {len(blue)} time(s) "
                    f"and green {self.route.green_backend!r} {len(green)} time(s); each split rule needs both, once")
            others = [ref.get("name") for ref in refs
                      if ref not in blue and ref not in green and ref.get("weight", DEFAULT_BACKEND_WEIGHT) != 0]
            if others:
                raise RouterError(
                    f"{self.route.describe()}: rule {index} also sends traffic to {', '.join(map(str, others))}; "
                    "green's percentage would be wrong")
            split.append(index)
        if not split:
            raise RouterError(
                f"{self.route.describe()}: no rule has backendRefs to {self.route.blue_backend!r} and "
                f"{self.route.green_backend!r}")
        return split

    def _rule_weights(self, rule: Mapping[str, Any]) -> RouterWeights:
        refs = rule["backendRefs"]
        blue = next(ref for ref in refs if _is_service_ref(ref, self.route.blue_backend))
        green = next(ref for ref in refs if _is_service_ref(ref, self.route.green_backend))
        return RouterWeights(blue=int(blue.get("weight", DEFAULT_BACKEND_WEIGHT)),
                             green=int(green.get("weight", DEFAULT_BACKEND_WEIGHT)))

    def weights_of(self, document: Mapping[str, Any]) -> RouterWeights:
        """The split every blue/green rule carries; rules that disagree are an unknown state."""
        rules = document["spec"]["rules"]
        per_rule = {index: self._rule_weights(rules[index]) for index in self.split_rules(document)}
        distinct = set(per_rule.values())
        if len(distinct) != 1:
            described = ", ".join(f"rule {index} {weights.to_dict()}" for index, weights in per_rule.items())
            raise RouterError(f"{self.route.describe()}: rules disagree on the split ({described})")
        return distinct.pop()

    def read_weights(self) -> RouterWeights:
        return self.weights_of(self.read_route())

    # -- changing --------------------------------------------------------------------------------

    def patch_body(self, document: Mapping[str, Any], target: RouterWeights) -> dict[str, Any] | None:
        """The JSON merge patch that puts `target` on every split rule, or None when every rule
        already has it. A merge patch replaces a list whole, so ``spec.rules`` is sent complete
        (matches, filters and all), changed only in the two weights; the resourceVersion makes the
        API server refuse it (409) if the route changed since it was read."""
        rules = copy.deepcopy(document["spec"]["rules"])
        changed = False
        for index in self.split_rules(document):
            for ref in rules[index]["backendRefs"]:
                for color, service in (("blue", self.route.blue_backend), ("green", self.route.green_backend)):
                    if _is_service_ref(ref, service) and ref.get("weight", DEFAULT_BACKEND_WEIGHT) != getattr(target, color):
                        ref["weight"] = getattr(target, color)
                        changed = True
        if not changed:
            return None
        return {"metadata": {"resourceVersion": document["metadata"]["resourceVersion"]}, "spec": {"rules": rules}}

    def set_weights(self, target: RouterWeights) -> RouterWeights:
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            document = self.read_route()
            body = self.patch_body(document, target)
            if body is None:
                log.info("%s already at blue %s / green %s: nothing to patch", self.route.describe(), target.blue, target.green)
                break
            try:
                self.custom_objects.patch_namespaced_custom_object(
                    GROUP, VERSION, self.route.namespace, PLURAL, self.route.name, body)
            except Exception as error:  # noqa: BLE001
                if getattr(error, "status", None) == 409 and attempt < CONFLICT_ATTEMPTS:
                    log.warning("%s changed while we patched it (409 Conflict): reading it again (attempt %d of %d)",
                                self.route.describe(), attempt + 1, CONFLICT_ATTEMPTS)
                    continue
                raise _api_failure(f"patch to blue {target.blue} / green {target.green}", self.route, error) from error
            log.info("%s patched to blue %s / green %s (resourceVersion %s)", self.route.describe(), target.blue,
                     target.green, body["metadata"]["resourceVersion"])
            break
        observed = self.read_weights()
        if observed != target:
            raise RouterError(f"{self.route.describe()}: weights read back as {observed.to_dict()}, expected {target.to_dict()}")
        return observed

    def set_green_percent(self, percent: int) -> RouterWeights:
        return self.set_weights(weights_for_green_percent(percent))

    # -- health ----------------------------------------------------------------------------------

    def route_problems(self, document: Mapping[str, Any]) -> list[str]:
        """Conditions a Gateway reported False on this route (Accepted, ResolvedRefs): the split
        then routes nothing, whatever the weights say."""
        problems = []
        for parent in (document.get("status") or {}).get("parents") or []:
            gateway = (parent.get("parentRef") or {}).get("name", "?")
            for condition in parent.get("conditions") or []:
                if condition.get("type") in ("Accepted", "ResolvedRefs") and condition.get("status") == "False":
                    problems.append(f"Gateway {gateway}: {condition['type']} False ({condition.get('reason', '')})")
        return problems

    def ready_endpoints(self, service: str) -> tuple[int, int]:
        """(ready, total) endpoints of a Service, from its EndpointSlices (ready unset counts as ready)."""
        if self.endpoint_slices is None:
            raise RouterError(f"{self.route.describe()}: no EndpointSlice client to read {service!r} health")
        try:
            answer = self.endpoint_slices.list_namespaced_endpoint_slice(
                self.route.namespace, label_selector=f"{_SERVICE_NAME_LABEL}={service}")
        except Exception as error:  # noqa: BLE001
            raise _api_failure(f"reading the EndpointSlices of Service {service!r}", self.route, error) from error
        endpoints = [endpoint for item in answer.items for endpoint in (item.endpoints or [])]
        ready = sum(1 for endpoint in endpoints
                    if endpoint.conditions is None or endpoint.conditions.ready in (None, True))
        return ready, len(endpoints)

    def server_states(self) -> dict[str, str]:
        """Per color, in HAProxy's words so the callers read both routers alike: "UP ..." when the
        route is accepted with its references resolved and the Service has a ready endpoint,
        "DOWN ..." otherwise, with the reason."""
        problems = self.route_problems(self.read_route())
        states = {}
        for color, service in (("blue", self.route.blue_backend), ("green", self.route.green_backend)):
            ready, total = self.ready_endpoints(service)
            if problems:
                states[color] = f"DOWN (route: {'; '.join(problems)})"
            elif ready:
                states[color] = f"UP ({ready}/{total} endpoints of Service {service} ready)"
            else:
                states[color] = f"DOWN (0/{total} endpoints of Service {service} ready)"
        return states
