"""Stage 7's HTTP checks of one color (cutover_kit.security.audit): which paths are probed, which
routes count as protected, what an auth answer means, and the stage 11 verdict, on the shipped
OpenAPI documents and on a fake sender (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover_kit.security.audit import (
    REFUSALS, WRONG_TOKEN, Answer, auth_findings, auth_refusal_findings, concrete_path, fetch_openapi, get_probes,
    passive_route_findings, protected_routes_of, route_key, secured_routes, smoke_findings, smoke_security_failure,
)
from cutover_kit.security.findings import normalise

REPO = Path(__file__).resolve().parents[4]
RAILS_OPENAPI = json.loads((REPO / "sandbox/apps/rails/config/openapi.json").read_text())
SAFE = [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]


class FakeApp:
    """A sender that answers from a table {(method, path): Answer} (else a safe JSON 404) and
    records every request with its headers."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.sent = []

    def __call__(self, method, path, headers):
        self.sent.append((method, path, dict(headers)))
        return self.answers.get((method, path), Answer(404, SAFE, '{"error": "no route"}'))


def test_route_keys_ignore_parameter_names():
    assert route_key("get", "/api/users/{user_id}/orders") == "GET /api/users/{}/orders"
    assert concrete_path("GET /api/users/{id}/orders", 7) == ("GET", "/api/users/7/orders")


def test_every_get_route_of_the_rails_document_is_probed_with_the_sample_id():
    probes = dict(get_probes(RAILS_OPENAPI, 1))
    assert probes["GET /api/users/{}"] == "/api/users/1"
    assert probes["GET /api/orders/{}/line_items"] == "/api/orders/1/line_items"
    assert "POST /api/users" not in probes and len(probes) == 7  # GET only: passive checks do not write
    with pytest.raises(ValueError, match="no 'paths'"):
        get_probes({"openapi": "3.0.0"}, 1)


def test_secured_routes_follow_operation_and_document_security():
    document = {"security": [{"bearer": []}], "paths": {
        "/api/admin/users": {"get": {}},
        "/healthz": {"get": {"security": []}},
        "/api/orders": {"post": {"security": [{"bearer": []}]}, "parameters": []},
    }}
    assert secured_routes(document) == {"GET /api/admin/users", "POST /api/orders"}
    assert secured_routes(RAILS_OPENAPI) == set()  # the sandbox apps declare no authentication
    assert protected_routes_of([RAILS_OPENAPI, document], ["GET /api/admin/users"]) == ["GET /api/admin/users", "POST /api/orders"]


@pytest.mark.parametrize("status", REFUSALS)
def test_a_refusal_is_no_finding(status):
    answer = Answer(status, SAFE, "{}")
    assert auth_findings("green", "GET /api/admin/users", {"no token": answer, "a wrong token": answer}) == []


def test_a_route_that_answers_without_a_token_is_a_high_finding_naming_how():
    leaked = Answer(200, SAFE, '[{"id": 1, "email": "a@example.test"}]')
    [finding] = auth_findings("green", "GET /api/admin/users", {"no token": leaked, "a wrong token": leaked})
    assert (finding.id, finding.severity, finding.color, finding.where) == (
        "auth-unauthenticated-access", "high", "green", "GET /api/admin/users")
    assert finding.evidence == ("HTTP 200 with no token (also with a wrong token), expected one of [401, 403, 404]; "
                                "answered 38 bytes of application/json")
    assert "a@example.test" not in finding.evidence  # what leaked stays out of logs and reasons


def test_auth_refusal_sends_no_token_then_a_wrong_one():
    app = FakeApp({("GET", "/api/admin/users"): Answer(200, SAFE, "[]")})
    findings = auth_refusal_findings("green", app, ["GET /api/admin/users"], 1)
    assert [f.id for f in findings] == ["auth-unauthenticated-access"]
    assert app.sent == [("GET", "/api/admin/users", {}), ("GET", "/api/admin/users", {"Authorization": WRONG_TOKEN})]


def test_passive_checks_run_on_every_get_route_and_name_the_route():
    app = FakeApp({("GET", "/api/users/1"): Answer(200, [*SAFE, ("X-Powered-By", "Fastify")], '{"id": 1}')})
    findings = passive_route_findings("green", app, RAILS_OPENAPI, 1)
    assert [(f.id, f.where, f.evidence) for f in findings] == [("zap-10037", "GET /api/users/{}", "X-Powered-By: Fastify")]
    assert len(app.sent) == 7


def test_the_openapi_document_is_required():
    with pytest.raises(ValueError, match="green: GET /openapi.json answered HTTP 404"):
        fetch_openapi(FakeApp(), "green")
    with pytest.raises(ValueError, match="not JSON"):
        fetch_openapi(FakeApp({("GET", "/openapi.json"): Answer(200, SAFE, "<html>")}), "blue")


def test_stage_11_fails_on_green_worse_than_blue_naming_rule_route_and_evidence():
    clean = FakeApp()
    weak = FakeApp({("GET", "/api/users/1"): Answer(200, [*SAFE, ("X-Powered-By", "Fastify")], "{}")})
    paths, protected = ["/api/users/1", "/nope"], ["GET /api/admin/users"]
    findings = smoke_findings("blue", clean, paths, protected) + smoke_findings("green", weak, paths, protected)
    line = smoke_security_failure(findings, "high")
    assert line == ("FAIL security: green worse than blue on zap-10037: green 1 finding(s) vs blue 0, "
                    "e.g. GET /api/users/1: X-Powered-By: Fastify")
    assert smoke_security_failure(smoke_findings("blue", clean, paths, protected)
                                  + smoke_findings("green", clean, paths, protected), "high") is None


def test_stage_11_fails_on_a_blocking_finding_on_green_even_when_blue_has_it_too():
    both = [normalise({"id": "auth-unauthenticated-access", "severity": "high", "color": color,
                       "where": "GET /api/admin/users", "evidence": "HTTP 200 with no token"}) for color in ("blue", "green")]
    assert smoke_security_failure(both, "high") == (
        "FAIL security: high auth-unauthenticated-access on green at GET /api/admin/users: HTTP 200 with no token")
    assert smoke_security_failure(both, "critical") is None  # below the plan's blocking severity, and no worse than blue
