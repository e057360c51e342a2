"""deploy/kubernetes/, checked offline: every object against its schema (kubernetes-validate for the
core kinds, strict; the vendored Gateway API v1 schemas for Gateway and HTTPRoute), then what the
schemas cannot say: probes on stage 5's endpoints, limits, non-root, config and secrets by
reference only, a Service and a PodDisruptionBudget per color, and the HTTPRoute, the RBAC and
include/plans/kubernetes.yaml naming the same route and Services. No cluster runs here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cutover_kit.plan import load_plan
from cutover_kit.routing import RouterWeights
from cutover_kit.routing.gateway_api import GatewayAPIRouter, HTTPRouteRef
from tests.kubernetes_schemas import REPO_ROOT, schema_errors

APPS = REPO_ROOT / "deploy" / "kubernetes" / "apps"
VALUES = REPO_ROOT / "deploy" / "kubernetes" / "airflow" / "values.yaml"
COLORS = ("blue", "green")


def documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document is not None]


MANIFESTS = {path.name: documents(path) for path in sorted(APPS.glob("*.yaml"))}
OBJECTS = [document for docs in MANIFESTS.values() for document in docs]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in OBJECTS if o["kind"] == kind}


def test_the_manifests_are_all_there():
    assert sorted(MANIFESTS) == ["airflow-access.yaml", "blue.yaml", "config.yaml", "gateway.yaml", "green.yaml", "namespace.yaml"]
    assert {o["kind"] for o in OBJECTS} == {"Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
                                            "Gateway", "HTTPRoute", "Role", "RoleBinding"}


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_object_is_valid_for_its_schema(obj):
    assert schema_errors(obj) == []


def test_the_validation_bites():
    deployment = objects("Deployment")["storefront-green"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = {"name": "http"}
    broken["spec"]["replicas"] = "two"
    assert len(schema_errors(broken)) == 1  # kubernetes-validate stops at the first error
    route = yaml.safe_load(yaml.safe_dump(objects("HTTPRoute")["storefront"]))
    route["spec"]["rules"][0]["backendRefs"][1]["weight"] = -5
    assert schema_errors(route) == ["$.spec.rules[0].backendRefs[1].weight: -5 is less than the minimum of 0"]


@pytest.mark.parametrize("color", COLORS)
def test_each_color_has_probes_limits_and_runs_as_non_root(color):
    deployment = objects("Deployment")[f"storefront-{color}"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {port["name"] for port in container["ports"]}
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    assert all(probe["port"] in ports for probe in probes.values())
    assert set(container["resources"]["requests"]) == set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                             "capabilities": {"drop": ["ALL"]}}
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["replicas"] >= 2


@pytest.mark.parametrize("color", COLORS)
def test_config_comes_from_a_configmap_and_secrets_by_reference_only(color):
    (container,) = objects("Deployment")[f"storefront-{color}"]["spec"]["template"]["spec"]["containers"]
    assert [source["configMapRef"]["name"] for source in container["envFrom"]] == [f"storefront-{color}-config"]
    assert f"storefront-{color}-config" in objects("ConfigMap")
    for variable in container["env"]:
        assert set(variable) == {"name", "valueFrom"}, f"{variable['name']} has a literal value"
        assert variable["valueFrom"]["secretKeyRef"]["name"] == "storefront-secrets"
    assert "Secret" not in {o["kind"] for o in OBJECTS}  # created outside git (docs/kubernetes.md)


@pytest.mark.parametrize("color", COLORS)
def test_each_color_has_a_service_and_a_disruption_budget_that_select_its_pods(color):
    name = f"storefront-{color}"
    pod_labels = objects("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
    service, budget = objects("Service")[name], objects("PodDisruptionBudget")[name]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["minAvailable"] == 1
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"


def test_the_route_starts_all_on_blue_and_matches_the_plan_and_the_rbac():
    route = objects("HTTPRoute")["storefront"]
    plan = load_plan("kubernetes")
    ref = HTTPRouteRef.from_plan_section(plan.gateway_api)
    assert (ref.namespace, ref.name) == (route["metadata"]["namespace"], route["metadata"]["name"])
    assert GatewayAPIRouter(ref, custom_objects=None).weights_of(route) == RouterWeights(blue=100, green=0)
    services = objects("Service")
    for backend in route["spec"]["rules"][0]["backendRefs"]:
        assert backend["port"] == services[backend["name"]]["spec"]["ports"][0]["port"]
    (parent,) = route["spec"]["parentRefs"]
    gateway = objects("Gateway")[parent["name"]]
    assert parent["sectionName"] in {listener["name"] for listener in gateway["spec"]["listeners"]}
    role = objects("Role")["cutover-router"]
    route_rule = next(rule for rule in role["rules"] if rule["resources"] == ["httproutes"])
    assert route_rule["resourceNames"] == [ref.name] and set(route_rule["verbs"]) == {"get", "patch"}


def test_the_airflow_values_run_celery_with_every_connection_from_a_secret():
    values = yaml.safe_load(VALUES.read_text())
    assert values["executor"] == "CeleryExecutor" and values["workers"]["replicas"] == 2
    assert values["triggerer"]["enabled"] is True and values["images"]["airflow"]["tag"]
    from_secrets = {entry["envName"]: entry for entry in values["secret"]}
    plan = load_plan("kubernetes")
    needed = {"kubernetes_default", "prometheus_default", "postgres_default", "redis_default", "app_blue",
              "app_green", "app_router", f"{plan.flag_backend}_default"}
    assert {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in needed} <= set(from_secrets)
    assert all(entry["secretName"] == "cutover-connections" for entry in from_secrets.values())
    # Nothing secret inline: the values hold names of Secrets, never their contents.
    assert not {"fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"} & set(values)
    bound = {subject["name"] for subject in objects("RoleBinding")["cutover-router"]["subjects"]}
    assert bound == {values["workers"]["serviceAccount"]["name"], values["triggerer"]["serviceAccount"]["name"]}
