"""Stage-7 building blocks: every passive check, the route surface on the shipped OpenAPI
documents, the normaliser, the judge, and the scanner parsers on reports recorded once against
the sandbox app (schemathesis, wapiti, sqlmap), over this repository (bandit) and the TypeScript
lock (npm audit: the registry's advisory endpoint answered 405, a failure that must not pass)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover_kit.security import scanners
from cutover_kit.security.findings import Finding, FindingError, normalise
from cutover_kit.security.judge import HALT, PASS, judge_security
from cutover_kit.security.passive import CHECKS, passive_findings
from cutover_kit.security.surface import routes, surface_findings

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[4]
SAFE_API = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff", "Server": "shop"}
SAFE_HTML = {**SAFE_API, "Content-Type": "text/html; charset=utf-8", "X-Frame-Options": "DENY",
             "Content-Security-Policy": "default-src 'self'", "Permissions-Policy": "camera=()"}


def ids(findings: list[Finding]) -> list[str]:
    return sorted(f.id for f in findings)


def check(headers, body="{}", url="http://127.0.0.1:1/api/x", status=200):
    return ids(passive_findings("green", "GET", url, status, headers, body))


# --- passive checks -----------------------------------------------------------------------------

def test_safe_answers_have_no_finding():
    assert check(SAFE_API) == []
    assert check(SAFE_HTML, "<html></html>") == []
    assert check({**SAFE_API, "Strict-Transport-Security": "max-age=1"}, url="https://127.0.0.1:1/") == []


@pytest.mark.parametrize("headers, body, url, expected", [
    ({**SAFE_HTML, "X-Frame-Options": None}, "<p>", "http://127.0.0.1:1/", ["zap-10020"]),
    ({**SAFE_HTML, "X-Frame-Options": None, "Content-Security-Policy": "frame-ancestors 'none'"}, "<p>", "http://127.0.0.1:1/", []),
    ({**SAFE_API, "X-Content-Type-Options": None}, "{}", "http://127.0.0.1:1/", ["zap-10021"]),
    (SAFE_API, "{}", "https://127.0.0.1:1/", ["zap-10035"]),
    ({**SAFE_HTML, "Content-Security-Policy": None, "X-Frame-Options": "DENY"}, "<p>", "http://127.0.0.1:1/", ["zap-10038"]),
    ({**SAFE_HTML, "Permissions-Policy": None}, "<p>", "http://127.0.0.1:1/", ["zap-10063"]),
    ({**SAFE_API, "Server": "sandbox-app Python/3.11.7"}, "{}", "http://127.0.0.1:1/", ["zap-10036"]),
    ({**SAFE_API, "X-Powered-By": "Express"}, "{}", "http://127.0.0.1:1/", ["zap-10037"]),
    ({**SAFE_API, "Access-Control-Allow-Origin": "*"}, "{}", "http://127.0.0.1:1/", ["zap-10098"]),
    ({**SAFE_API, "Access-Control-Allow-Origin": "https://evil.test", "Access-Control-Allow-Credentials": "true"}, "{}",
     "http://127.0.0.1:1/", ["zap-10098"]),
])
def test_each_header_rule(headers, body, url, expected):
    assert check({k: v for k, v in headers.items() if v is not None}, body, url) == expected


def test_cookie_flags():
    headers = [*SAFE_API.items(), ("Set-Cookie", "sid=1; Path=/"), ("Set-Cookie", "ok=2; HttpOnly; Secure; SameSite=Lax")]
    assert check(headers) == ["zap-10010", "zap-10054"]
    assert check(headers, url="https://127.0.0.1:1/") == ["zap-10010", "zap-10011", "zap-10035", "zap-10054"]


@pytest.mark.parametrize("body", [
    'Traceback (most recent call last):\n  File "/srv/app.py", line 3, in <module>',
    "TypeError: x is undefined\n    at Object.<anonymous> (/srv/dist/api.js:12:5)",
    "NoMethodError (undefined method)\n/srv/app/controllers/api/orders_controller.rb:12:in `show'",
    '{"error": "ActiveRecord::StatementInvalid: PG::UndefinedColumn"}',
    "<title>Action Controller: Exception caught</title>",
    "Cannot GET /nope",
])
def test_error_disclosure_in_each_stack(body):
    assert check(SAFE_API, body, status=500) == ["zap-90022"]


def test_plain_error_json_discloses_nothing():
    assert check(SAFE_API, '{"error": "no route for GET /nope"}', status=404) == []


def test_every_rule_of_the_brief_has_a_check_and_unknown_rules_are_refused():
    assert set(CHECKS) == {"10020", "10021", "10035", "10038", "10063", "10036", "10037", "10010", "10011", "10054",
                           "10098", "90022"}
    with pytest.raises(ValueError, match="unknown passive rule"):
        passive_findings("green", "GET", "http://127.0.0.1:1/", 200, {}, "", rules=("10099",))


# --- route surface ------------------------------------------------------------------------------

def test_surface_of_the_shipped_rails_document():
    rails = json.loads((REPO / "sandbox/apps/rails/config/openapi.json").read_text())
    assert {"GET /api/users/{}", "GET /api/users/{}/orders", "POST /api/orders", "GET /api/orders/{}/line_items"} <= routes(rails)


def test_surface_names_routes_only_one_color_declares():
    blue = {"paths": {"/api/users/{id}": {"get": {}}, "/healthz": {"get": {}}}}
    green = {"paths": {"/api/users/{user_id}": {"get": {}}, "/api/admin": {"get": {}, "parameters": []}}}
    found = surface_findings(blue, green)
    assert [(f.id, f.color, f.where, f.severity) for f in found] == [
        ("surface-only-green", "green", "GET /api/admin", "medium"), ("surface-only-blue", "blue", "GET /healthz", "low")]
    assert surface_findings(blue, green, ignore=("GET /healthz", "GET /api/admin")) == []
    with pytest.raises(ValueError, match="no 'paths'"):
        routes({"openapi": "3.0.3"})


# --- normaliser ---------------------------------------------------------------------------------

def test_normaliser_maps_scanner_words_and_trims_evidence():
    finding = normalise({"id": "x", "severity": "MODERATE", "color": "code", "where": "a", "evidence": "a\n  b" + "c" * 400})
    assert finding.severity == "medium" and finding.evidence.startswith("a b") and len(finding.evidence) == 300


@pytest.mark.parametrize("raw, message", [({"severity": "low", "color": "green", "where": "w"}, "missing"),
                                          ({"id": "x", "severity": "scary", "color": "green", "where": "w"}, "unknown severity"),
                                          ({"id": "x", "severity": "low", "color": "red", "where": "w"}, "color")])
def test_normaliser_refuses_bad_fields(raw, message):
    with pytest.raises(FindingError, match=message):
        normalise(raw)


# --- judge --------------------------------------------------------------------------------------

def f(id_: str, color: str, severity: str = "low", where: str = "GET /x") -> Finding:
    return Finding(id_, severity, color, where, "evidence")


def test_judge_passes_when_green_matches_blue_below_the_blocking_severity():
    verdict = judge_security([f("zap-10036", "blue"), f("zap-10036", "green")], "medium")
    assert verdict.verdict == PASS and "findings: blue 1, green 1, code 0" in verdict.reason


def test_judge_halts_on_a_blocking_finding_in_green_or_code_but_not_blue():
    verdict = judge_security([f("zap-90022", "green", "medium", "GET /nope (unknown path (404))")], "medium")
    assert verdict.verdict == HALT
    assert verdict.reason == "Halt before traffic: medium zap-90022 on green at GET /nope (unknown path (404)): evidence"
    assert judge_security([f("bandit-B602", "code", "high")], "high").verdict == HALT
    assert judge_security([f("sqlmap-injection", "blue", "critical")], "medium").verdict == PASS


def test_judge_halts_when_green_is_worse_than_blue_on_a_check():
    verdict = judge_security([f("zap-10021", "green"), f("zap-10021", "green", where="GET /y"), f("zap-10021", "blue")], "high")
    assert verdict.verdict == HALT and "green worse than blue on zap-10021: green 2 finding(s) vs blue 1" in verdict.reason
    with pytest.raises(ValueError, match="blocking_severity"):
        judge_security([], "severe")


# --- scanner parsers on recorded reports ---------------------------------------------------------

def test_bandit_report():
    found = scanners.parse_bandit((DATA / "bandit.json").read_text())
    assert len(found) == 67 and all(x.color == "code" for x in found)
    assert found[0] == Finding("bandit-B608", "medium", "code", "include/gx/suites.py:155",
                               "Possible SQL injection vector through string-based query construction. (confidence low)")


def test_wapiti_report():
    found = scanners.parse_wapiti((DATA / "wapiti.json").read_text(), "green")
    assert {x.id for x in found} == {"wapiti-http-secure-headers"}
    assert [x.evidence for x in found][:1] == ["X-Frame-Options is not set"] and found[0].where == "GET /api/orders/1"


def test_sqlmap_report_without_injection_and_with_one():
    log = (DATA / "sqlmap_not_injectable.txt").read_text()
    assert scanners.parse_sqlmap((DATA / "sqlmap_results_none.csv").read_text(), log, "green") == []
    injectable = (DATA / "sqlmap_results_none.csv").read_text() + "http://127.0.0.1:1/api/users/1*,URI,#1*,BT,\n"
    (hit,) = scanners.parse_sqlmap(injectable, log, "green")
    assert (hit.id, hit.severity) == ("sqlmap-injection", "critical")
    with pytest.raises(scanners.ScannerError, match="did not finish"):
        scanners.parse_sqlmap("", log.replace("[*] ending @", "[*] cut"), "green")


def test_schemathesis_report():
    found = scanners.parse_schemathesis_junit((DATA / "schemathesis_junit.xml").read_text(), "green")
    assert {x.id for x in found} == {"schemathesis-ST101", "schemathesis-ST108", "schemathesis-ST204"}
    assert {x.severity for x in found if x.id == "schemathesis-ST101"} == {"medium"}
    assert len(found) == 23
    with pytest.raises(scanners.ScannerError, match="no test case"):
        scanners.parse_schemathesis_junit("<testsuites/>", "green")


def test_a_failed_npm_audit_is_an_error_not_a_pass():
    with pytest.raises(scanners.ScannerError, match="405 Method Not Allowed"):
        scanners.parse_npm_audit((DATA / "npm_audit_registry_405.json").read_text())


def test_npm_audit_report_format():
    # npm 7+ audit report shape (npm could not fetch advisories here, see the recorded 405).
    report = {"auditReportVersion": 2, "vulnerabilities": {
        "ws": {"name": "ws", "severity": "high", "range": "8.0.0 - 8.17.0", "fixAvailable": True,
               "via": [{"title": "ws DoS", "url": "https://github.com/advisories/GHSA-3h5v-q93c-6h6q", "severity": "high"}]},
        "fastify": {"name": "fastify", "severity": "high", "range": "*", "fixAvailable": False, "via": ["ws"]}}}
    found = scanners.parse_npm_audit(json.dumps(report))
    assert [(x.id, x.severity, x.where) for x in found] == [("npm-fastify", "high", "fastify@*"),
                                                            ("npm-GHSA-3h5v-q93c-6h6q", "high", "ws@8.0.0 - 8.17.0")]


@pytest.mark.parametrize("parse", [scanners.parse_bandit, scanners.parse_npm_audit,
                                   lambda text: scanners.parse_wapiti(text, "green")])
def test_garbage_reports_are_errors(parse):
    with pytest.raises(scanners.ScannerError):
        parse("not json")


def test_a_missing_scanner_is_an_error(tmp_path):
    with pytest.raises(scanners.ScannerError, match="not installed"):
        scanners.run_scanner("nothing", ["/nonexistent/scanner"], 5)
    with pytest.raises(scanners.ScannerError, match="exited 3"):
        scanners.run_scanner("false", ["sh", "-c", "echo boom >&2; exit 3"], 5)
    with pytest.raises(scanners.ScannerError, match="within 0.5s"):
        scanners.run_scanner("slow", ["sleep", "5"], 0.5)
