"""Scanner adapters: each scanner runs as a subprocess with a bounded time, against loopback or
over the code, and its report is parsed into normalised findings. The parsers are pure (tested on
recorded reports). A scanner that is missing, times out, crashes or writes no report raises
ScannerError: a scan that did not happen is never a pass.

- schemathesis: fuzzes one color against an OpenAPI document (JUnit report; ST codes)
- wapiti: crawls and attacks one color (JSON report)
- sqlmap: SQL injection on a URL with a marked parameter (results CSV, --batch)
- bandit: the Python code (JSON)
- npm audit: the TypeScript lock (JSON; needs the registry's advisory endpoint)
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from cutover_kit.load.target import loopback_base_url
from cutover_kit.security.findings import Finding, normalise

OUTPUT_TAIL_CHARS = 800
# Schemathesis check codes -> severity: a 5xx on generated input is a robustness bug that may leak
# (medium); contract drift is low.
SCHEMATHESIS_SEVERITY = {"ST101": "medium", "ST401": "high"}
# The schemathesis checks a security audit runs: a 5xx on generated input (robustness; error pages
# leak) and an endpoint that ignores its declared authentication. Contract conformance (status
# codes, schemas, headers, undeclared methods) is the parity checks' business: run here, it makes
# two apps with different documents "worse" than each other on drift that is no weakness.
SCHEMATHESIS_SECURITY_CHECKS = ("not_a_server_error", "ignored_auth")
# wapiti's attack modules. Its header and cookie modules are left to the passive ZAP-rule checks,
# which follow current advice (wapiti 3.0.4 asks for X-XSS-Protection: 1, OWASP now advises 0).
WAPITI_ATTACK_MODULES = "exec,sql,xss,permanentxss,backup,htaccess,methods"
_ST_CODE = re.compile(r"^- (ST\d{3}) (.+)$", re.M)


class ScannerError(RuntimeError):
    """A scanner could not give a verdict; the message names the scanner and why."""


def run_scanner(name: str, command: list[str], timeout_seconds: float, cwd: Path | None = None,
                ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    if shutil.which(command[0]) is None and not Path(command[0]).is_file():
        raise ScannerError(f"{name}: {command[0]} is not installed")
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout_seconds, check=False)
    except subprocess.TimeoutExpired:
        raise ScannerError(f"{name}: no result within {timeout_seconds:g}s (killed)") from None
    if done.returncode not in ok_codes:
        raise ScannerError(f"{name}: exited {done.returncode}: {_tail(done.stderr or done.stdout)}")
    return done


# --- parsers (pure) -----------------------------------------------------------------------------

def parse_bandit(report: str) -> list[Finding]:
    data = _json(report, "bandit")
    if "results" not in data:
        raise ScannerError("bandit: report has no 'results'")
    if data.get("errors"):
        raise ScannerError(f"bandit: could not scan {[e.get('filename') for e in data['errors']][:5]}")
    return [normalise({"id": f"bandit-{r['test_id']}", "severity": r["issue_severity"], "color": "code",
                       "where": f"{r['filename']}:{r['line_number']}",
                       "evidence": f"{r['issue_text']} (confidence {r['issue_confidence'].lower()})"})
            for r in data["results"]]


def parse_npm_audit(report: str) -> list[Finding]:
    data = _json(report, "npm audit")
    if "vulnerabilities" not in data:
        raise ScannerError(f"npm audit: no audit result: {data.get('message') or data.get('error') or _tail(report)}")
    findings = []
    for package, entry in sorted(data["vulnerabilities"].items()):
        advisories = [via for via in entry.get("via", []) if isinstance(via, dict)]
        for via in advisories or [{"title": f"through {', '.join(map(str, entry.get('via', [])))}", "url": ""}]:
            advisory = (via.get("url") or "").rsplit("/", 1)[-1] or package
            findings.append(normalise({"id": f"npm-{advisory}", "severity": via.get("severity", entry["severity"]),
                                       "color": "code", "where": f"{package}@{entry.get('range', '?')}",
                                       "evidence": f"{via.get('title', '')}; fix available: {bool(entry.get('fixAvailable'))}"}))
    return findings


def parse_wapiti(report: str, color: str) -> list[Finding]:
    data = _json(report, "wapiti")
    if "vulnerabilities" not in data or "infos" not in data:
        raise ScannerError("wapiti: report has no 'vulnerabilities'")
    findings = []
    for section in ("vulnerabilities", "anomalies"):
        for category, items in sorted(data.get(section, {}).items()):
            for item in items:
                findings.append(normalise({"id": "wapiti-" + re.sub(r"[^a-z0-9]+", "-", category.lower()).strip("-"),
                                           "severity": str(item.get("level", 1)), "color": color,
                                           "where": f"{item.get('method', 'GET')} {item.get('path', '?')}",
                                           "evidence": item.get("info", "")}))
    return findings


def parse_sqlmap(results_csv: str, log: str, color: str) -> list[Finding]:
    if "[*] ending @" not in log:
        raise ScannerError(f"sqlmap: did not finish: {_tail(log)}")
    reader = csv.DictReader(io.StringIO(results_csv))
    if reader.fieldnames is None or "Parameter" not in reader.fieldnames:
        raise ScannerError("sqlmap: results CSV has no 'Parameter' column")
    return [normalise({"id": "sqlmap-injection", "severity": "critical", "color": color,
                       "where": f"{row['Target URL']} ({row['Place']} {row['Parameter']})",
                       "evidence": f"injectable: {row['Technique(s)']} {row.get('Note(s)', '')}"})
            for row in reader if row.get("Parameter")]


def parse_schemathesis_junit(report: str, color: str) -> list[Finding]:
    try:
        root = ElementTree.fromstring(report)  # nosec B314 - schemathesis' own report, written by this stage
    except ElementTree.ParseError as error:
        raise ScannerError(f"schemathesis: JUnit report is not XML: {error}") from None
    if root.find(".//testcase") is None:
        raise ScannerError("schemathesis: JUnit report holds no test case (no operation was tested)")
    findings = []
    for case in root.iter("testcase"):
        seen = set()
        for failure in case.iter("failure"):
            for code, title in _ST_CODE.findall(failure.text or ""):
                if code not in seen:
                    seen.add(code)
                    reproduce = (failure.text or "").split("Reproduce with:")[-1].strip().splitlines()[0:1]
                    findings.append(normalise({"id": f"schemathesis-{code}", "severity": SCHEMATHESIS_SEVERITY.get(code, "low"),
                                               "color": color, "where": case.get("name"),
                                               "evidence": f"{title.strip()}; {' '.join(reproduce)}"}))
        for error in case.iter("error"):
            raise ScannerError(f"schemathesis: {case.get('name')}: {error.get('message') or _tail(error.text or '')}")
    return findings


# --- runners --------------------------------------------------------------------------------------

def run_bandit(paths: list[Path], cwd: Path, timeout_seconds: float = 120) -> list[Finding]:
    bandit = str(Path(sys.executable).with_name("bandit"))
    done = run_scanner("bandit", [bandit, "-r", *map(str, paths), "-f", "json", "-q"], timeout_seconds, cwd, ok_codes=(0, 1))
    return parse_bandit(done.stdout)


def run_npm_audit(package_dir: Path, npm_command: list[str] | None = None, timeout_seconds: float = 120) -> list[Finding]:
    """`npm audit --json` in package_dir (its package-lock.json), with the project's Node by default.
    npm exits 1 when it finds vulnerabilities: the report decides, not the code."""
    command = (npm_command or [sys.executable, "-m", "sandbox.node", "npm"]) + ["audit", "--json"]
    if not (Path(package_dir) / "package-lock.json").is_file():
        raise ScannerError(f"npm audit: {package_dir}/package-lock.json does not exist")
    done = run_scanner("npm audit", command, timeout_seconds, package_dir, ok_codes=(0, 1))
    return parse_npm_audit(done.stdout)


def run_wapiti(color: str, start_url: str, out_dir: Path, max_scan_seconds: int = 90,
               modules: str = WAPITI_ATTACK_MODULES,
               headers: dict[str, str] | None = None, extra_start_urls: tuple[str, ...] = ()) -> list[Finding]:
    """wapiti from `start_url` (plus `extra_start_urls`: the apps link nothing, so the routes to
    attack are given), within the start URL's host; scan and attack time bounded."""
    for url in (start_url, *extra_start_urls):
        loopback_base_url(url.split("/", 3)[0] + "//" + url.split("/", 3)[2])
    report = Path(out_dir) / f"wapiti-{color}.json"
    report.unlink(missing_ok=True)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    command = ["wapiti", "-u", start_url, "--scope", "domain", "--max-scan-time", str(max_scan_seconds),
               "--max-attack-time", str(max(max_scan_seconds // 4, 5)), "-m", modules, "-f", "json",
               "-o", str(report), "--flush-session", "--store-session", str(Path(out_dir) / f"wapiti-{color}-session")]
    for url in extra_start_urls:
        command += ["-s", url]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    run_scanner("wapiti", command, max_scan_seconds + 60)
    if not report.is_file():
        raise ScannerError(f"wapiti: wrote no report at {report}")
    return parse_wapiti(report.read_text(), color)


def run_sqlmap(color: str, url_with_marker: str, out_dir: Path, timeout_seconds: float = 150,
               headers: dict[str, str] | None = None, techniques: str = "BEU") -> list[Finding]:
    """sqlmap --batch on a URL whose injection point is marked with '*' (e.g. /api/users/1*).
    `techniques`: boolean, error and UNION by default; time-based and stacked queries wait on
    purpose (seconds per payload) and would not fit a bounded pre-traffic stage."""
    if "*" not in url_with_marker:
        raise ScannerError("sqlmap: mark the injection point with '*' in the URL")
    parts = url_with_marker.split("/", 3)
    loopback_base_url(parts[0] + "//" + parts[2])
    out = Path(out_dir) / f"sqlmap-{color}"
    shutil.rmtree(out, ignore_errors=True)
    command = ["sqlmap", "-u", url_with_marker, "--batch", "--level", "1", "--risk", "1", "--timeout", "5",
               "--retries", "0", "--technique", techniques, "--output-dir", str(out), "--flush-session",
               "--disable-coloring"]
    if headers:
        command += ["--headers", "\n".join(f"{name}: {value}" for name, value in headers.items())]
    done = run_scanner("sqlmap", command, timeout_seconds)
    results = sorted(out.glob("results-*.csv"))
    if not results:
        raise ScannerError(f"sqlmap: wrote no results CSV in {out}: {_tail(done.stdout)}")
    return parse_sqlmap(results[-1].read_text(), done.stdout, color)


def run_schemathesis(color: str, openapi: Path | str, base_url: str, out_dir: Path, max_examples: int = 10,
                     timeout_seconds: float = 180, headers: dict[str, str] | None = None, seed: int = 7,
                     checks: tuple[str, ...] = SCHEMATHESIS_SECURITY_CHECKS) -> list[Finding]:
    """Fuzz one color against an OpenAPI document (a file, or the URL the app serves it at).
    schemathesis exits 1 when it finds failures: the JUnit report decides. A fixed `seed` sends
    both colors the same generated inputs, so their findings compare."""
    base = loopback_base_url(base_url)
    junit = Path(out_dir) / f"schemathesis-{color}.xml"
    junit.unlink(missing_ok=True)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    schemathesis = str(Path(sys.executable).with_name("schemathesis"))
    command = [schemathesis, "run", str(openapi), "--url", base, "-n", str(max_examples), "--seed", str(seed),
               "--checks", ",".join(checks),
               "--max-failures", "50", "--request-timeout", "5", "--workers", "1",
               "--report", "junit", "--report-junit-path", str(junit)]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    # schemathesis keeps a crash cache in its working folder and replays it on the next run: a
    # fresh folder per run keeps both colors' runs alike and the caller's folder clean.
    workdir = Path(out_dir) / f"schemathesis-{color}-work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    run_scanner("schemathesis", command, timeout_seconds, cwd=workdir, ok_codes=(0, 1))
    if not junit.is_file():
        raise ScannerError(f"schemathesis: wrote no JUnit report at {junit}")
    return parse_schemathesis_junit(junit.read_text(), color)


def _json(report: str, name: str) -> dict:
    try:
        data = json.loads(report)
    except json.JSONDecodeError as error:
        raise ScannerError(f"{name}: report is not JSON ({error}): {_tail(report)}") from None
    if not isinstance(data, dict):
        raise ScannerError(f"{name}: report is not a JSON object")
    return data


def _tail(text: str) -> str:
    text = (text or "").strip()
    return ("..." + text[-OUTPUT_TAIL_CHARS:]) if len(text) > OUTPUT_TAIL_CHARS else (text or "(no output)")
