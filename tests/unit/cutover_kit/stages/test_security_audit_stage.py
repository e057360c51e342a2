"""Stage 7's pure parts (cutover_kit.stages.security_audit): the plan's section required, the
summary the judge task writes (a listed scanner without a result halts, never a pass), its line."""

from __future__ import annotations

import pytest

from cutover_kit.stages.security_audit import (
    SCANNERS, missing_results, own_headers, security_settings, security_summary, verdict_line,
)

SETTINGS = {"blocking_severity": "high", "scanners": ["schemathesis", "bandit"], "scanner_seconds": 60}


def finding(color, check="zap-10021", severity="low", where="GET /api/users/{}"):
    return {"id": check, "severity": severity, "color": color, "where": where, "evidence": "x"}


def result(scanner=None, findings=()):
    return {"verdict": "PASS", "findings": list(findings), "scanners": {scanner: {"seconds": 1.0, "findings": len(findings)}} if scanner else {}}


def test_a_plan_without_security_is_refused_with_what_to_add():
    with pytest.raises(ValueError, match="no security section .*stage 7 cannot judge"):
        security_settings(None)


def test_each_color_is_asked_for_its_own_code():
    assert own_headers("green") == {"X-Cutover-Serve": "typescript"}
    assert own_headers("blue") == {"X-Cutover-Serve": "rails"}
    assert set(SCANNERS) == {"schemathesis", "wapiti", "sqlmap", "bandit", "npm_audit"}


def test_a_clean_audit_passes_with_counts():
    results = {"http": result(None, [finding("blue"), finding("green")]), "st": result("schemathesis"), "b": result("bandit")}
    summary = security_summary(SETTINGS, results, {})
    assert summary["verdict"] == "pass" and summary["blocking"] == [] and summary["incomplete"] == []
    assert summary["counts"] == {"blue": 1, "green": 1, "code": 0}
    assert summary["scanners"] == {"schemathesis": {"seconds": 1.0, "findings": 0}, "bandit": {"seconds": 1.0, "findings": 0}}
    assert verdict_line(summary).startswith("Security audit PASS: Security ok")


def test_a_blocking_finding_on_green_halts_naming_it():
    results = {"http": result(None, [finding("green", "auth-unauthenticated-access", "high", "GET /api/admin/users")]),
               "st": result("schemathesis"), "b": result("bandit")}
    summary = security_summary(SETTINGS, results, {})
    assert summary["verdict"] == "halt"
    assert summary["reason"] == "Halt before traffic: high auth-unauthenticated-access on green at GET /api/admin/users: x"
    assert [b["id"] for b in summary["blocking"]] == ["auth-unauthenticated-access"]


def test_a_listed_scanner_that_failed_or_never_ran_halts():
    results = {"http": result(None), "st": None, "b": result("bandit")}
    failed = security_summary(SETTINGS, results, {"scan_schemathesis": "schemathesis: no result within 60s (killed)"})
    assert failed["verdict"] == "halt"
    assert failed["reason"] == ("Halt before traffic: the audit is incomplete: "
                                "scan_schemathesis: schemathesis: no result within 60s (killed)")
    silent = security_summary(SETTINGS, results, {})
    assert silent["verdict"] == "halt" and silent["incomplete"] == ["schemathesis gave no result"]
    assert missing_results(SETTINGS, results) == ["schemathesis"]


def test_a_blocking_finding_outranks_an_incomplete_audit_in_the_reason():
    results = {"http": result(None, [finding("green", "zap-90022", "high")]), "st": None, "b": result("bandit")}
    summary = security_summary(SETTINGS, results, {"scan_schemathesis": "schemathesis: exited 2"})
    assert summary["verdict"] == "halt" and "zap-90022" in summary["reason"]
    assert summary["incomplete"] == ["scan_schemathesis: schemathesis: exited 2"]


# --- stage 11's security part (traffic_migration.security_smoke) ---------------------------------

SAFE = [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]


class FakeServiceHook:
    """ServiceHook stand-in: answers per Connection id from `answers`, records what was sent."""
    answers: dict = {}
    sent: list = []

    def __init__(self, conn_id):
        self.conn_id = conn_id

    def exchange(self, method, path, headers=None):
        FakeServiceHook.sent.append((self.conn_id, method, path, dict(headers or {})))
        return self.answers.get((self.conn_id, path), (404, SAFE, '{"error": "no route"}'))


@pytest.fixture
def smoke_world(monkeypatch):
    from types import SimpleNamespace

    from cutover_kit.stages import traffic_migration

    FakeServiceHook.answers, FakeServiceHook.sent = {}, []
    monkeypatch.setattr("cutover_kit.hooks.service.ServiceHook", FakeServiceHook)
    plan = SimpleNamespace(security={**SETTINGS, "protected_routes": ["GET /api/admin/users"]})
    monkeypatch.setattr(traffic_migration, "plan_of_run", lambda task_id: plan)
    return traffic_migration, plan


def test_stage_11_passes_a_clean_green_and_asks_each_color_for_its_own_code(smoke_world):
    traffic_migration, _ = smoke_world
    assert traffic_migration.security_smoke("plan", "25 %") is None
    green = [sent for sent in FakeServiceHook.sent if sent[0] == "app_green"]
    assert green and all(headers["X-Cutover-Serve"] == "typescript" for *_, headers in green)
    assert {path for _, _, path, _ in FakeServiceHook.sent} == {"/api/users/1", "/api/orders/1", "/definitely-not-a-route",
                                                                 "/api/admin/users"}


def test_stage_11_fails_naming_the_rule_the_route_and_the_evidence(smoke_world):
    traffic_migration, _ = smoke_world
    FakeServiceHook.answers[("app_green", "/api/admin/users")] = (200, SAFE, "[]")
    line = traffic_migration.security_smoke("plan", "50 %")
    assert line.startswith("FAIL security: high auth-unauthenticated-access on green at GET /api/admin/users: HTTP 200 with no token")


def test_stage_11_fails_when_a_color_does_not_answer(smoke_world, monkeypatch):
    traffic_migration, _ = smoke_world

    def refuse(self, method, path, headers=None):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(FakeServiceHook, "exchange", refuse)
    assert traffic_migration.security_smoke("plan", "5 %") == "FAIL security checks on blue: ConnectionError: connection refused"


def test_stage_11_without_a_security_section_runs_no_security_check(smoke_world):
    traffic_migration, plan = smoke_world
    plan.security = None
    assert traffic_migration.security_smoke("plan", "5 %") is None and FakeServiceHook.sent == []
