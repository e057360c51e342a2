"""Stage 7's checks and scanners against the sandbox's real apps (Rails blue, TypeScript green):
each scanner runs, bounded, and gives a verdict on both colors; the HTTP checks find each
weakness of the insecure fault on green and nothing blocking on a healthy pair. Loopback only;
every test well under two minutes."""

from __future__ import annotations

import time

import pytest

from cutover_kit.paths import REPO_ROOT
from cutover_kit.security import scanners
from cutover_kit.security.audit import audit_color
from cutover_kit.security.judge import HALT, PASS, judge_security
from cutover_kit.security.surface import surface_findings
from cutover_kit.stages.security_audit import BANDIT_PATHS, own_headers
from sandbox.faults import FaultController

PROTECTED = ["GET /api/admin/users"]
OPS_ROUTES = ("GET /healthz", "GET /readyz", "GET /metrics")  # only blue's document declares them (rehearsal plan)
BOUND = 60


def audit_both(box):
    documents, findings = {}, []
    for color in ("blue", "green"):
        documents[color], found = audit_color(color, box.config.app_url(color), own_headers(color), PROTECTED)
        findings += found
    return findings + surface_findings(documents["blue"], documents["green"], OPS_ROUTES)


@pytest.fixture
def faults(sandbox):
    controller = FaultController(sandbox.config)
    yield controller
    controller.clear("green")


def test_a_healthy_pair_passes_the_http_checks(sandbox):
    findings = audit_both(sandbox)
    verdict = judge_security(findings, "high")
    assert verdict.verdict == PASS, (verdict.reason, [f.line() for f in findings])


@pytest.mark.parametrize(("weakness", "check", "severity"), [
    ("unauthenticated_route", "auth-unauthenticated-access", "high"),
    ("stack_trace", "zap-90022", "medium"),
    ("x_powered_by", "zap-10037", "low"),
    ("missing_security_headers", "zap-10021", "low"),
])
def test_each_weakness_on_green_halts_naming_its_check(sandbox, faults, weakness, check, severity):
    faults.inject("green", "insecure", weakness=weakness)
    findings = audit_both(sandbox)
    verdict = judge_security(findings, "high")
    assert verdict.verdict == HALT, [f.line() for f in findings]
    assert check in verdict.reason, verdict.reason
    green = [f for f in findings if f.id == check and f.color == "green"]
    assert green and green[0].severity == severity
    assert not any(f.id == check and f.color == "blue" for f in findings)


@pytest.mark.parametrize("color", ["blue", "green"])
def test_schemathesis_fuzzes_each_app_against_its_own_document(sandbox, tmp_path, color):
    url = sandbox.config.app_url(color)
    started = time.monotonic()
    findings = scanners.run_schemathesis(color, f"{url}/openapi.json", url, tmp_path, max_examples=5,
                                         timeout_seconds=BOUND, headers=own_headers(color))
    assert time.monotonic() - started < BOUND
    assert (tmp_path / f"schemathesis-{color}.xml").is_file()
    assert all(f.color == color and f.id.startswith("schemathesis-ST") for f in findings)
    assert not any(f.severity in ("high", "critical") for f in findings), [f.line() for f in findings]


@pytest.mark.parametrize("color", ["blue", "green"])
def test_wapiti_attacks_each_app_within_its_bound(sandbox, tmp_path, color):
    url = sandbox.config.app_url(color)
    findings = scanners.run_wapiti(color, f"{url}/api/users/1", tmp_path, max_scan_seconds=20, headers=own_headers(color),
                                   extra_start_urls=(f"{url}/api/orders/1",))
    assert (tmp_path / f"wapiti-{color}.json").is_file()
    assert not any(f.severity in ("high", "critical") for f in findings), [f.line() for f in findings]


@pytest.mark.parametrize("color", ["blue", "green"])
def test_sqlmap_finds_no_injection_in_either_app(sandbox, tmp_path, color):
    findings = scanners.run_sqlmap(color, f"{sandbox.config.app_url(color)}/api/users/1*", tmp_path, timeout_seconds=BOUND,
                                   headers=own_headers(color))
    assert findings == []
    assert list((tmp_path / f"sqlmap-{color}").glob("results-*.csv"))


def test_a_scanner_over_its_time_bound_is_an_error_not_a_pass(sandbox, tmp_path):
    url = sandbox.config.app_url("green")
    with pytest.raises(scanners.ScannerError, match=r"schemathesis: no result within 1s \(killed\)"):
        scanners.run_schemathesis("green", f"{url}/openapi.json", url, tmp_path, max_examples=50, timeout_seconds=1,
                                  headers=own_headers("green"))


def test_bandit_over_the_projects_python_has_nothing_high():
    findings = scanners.run_bandit([REPO_ROOT / path for path in BANDIT_PATHS], REPO_ROOT, timeout_seconds=BOUND)
    assert findings and all(f.color == "code" for f in findings)
    assert not [f.line() for f in findings if f.severity in ("high", "critical")]
