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
