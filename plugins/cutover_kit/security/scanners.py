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
SCHEMATHESIS_SEVERITY = {"ST101": "medium"}
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
        root = ElementTree.fromstring(report)
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
               modules: str = "exec,sql,xss,permanentxss,backup,htaccess,methods,http_headers,cookieflags") -> list[Finding]:
    loopback_base_url(start_url.split("/", 3)[0] + "//" + start_url.split("/", 3)[2])
    report = Path(out_dir) / f"wapiti-{color}.json"
    report.unlink(missing_ok=True)
    run_scanner("wapiti", ["wapiti", "-u", start_url, "--scope", "folder", "--max-scan-time", str(max_scan_seconds),
                           "--max-attack-time", str(max(max_scan_seconds // 4, 5)), "-m", modules, "-f", "json",
                           "-o", str(report), "--flush-session", "--store-session", str(Path(out_dir) / f"wapiti-{color}-session")],
                max_scan_seconds + 60)
    if not report.is_file():
        raise ScannerError(f"wapiti: wrote no report at {report}")
    return parse_wapiti(report.read_text(), color)


def run_sqlmap(color: str, url_with_marker: str, out_dir: Path, timeout_seconds: float = 150) -> list[Finding]:
    """sqlmap --batch on a URL whose injection point is marked with '*' (e.g. /api/users/1*)."""
    if "*" not in url_with_marker:
        raise ScannerError("sqlmap: mark the injection point with '*' in the URL")
    parts = url_with_marker.split("/", 3)
    loopback_base_url(parts[0] + "//" + parts[2])
    out = Path(out_dir) / f"sqlmap-{color}"
    shutil.rmtree(out, ignore_errors=True)
    done = run_scanner("sqlmap", ["sqlmap", "-u", url_with_marker, "--batch", "--level", "1", "--risk", "1", "--timeout", "5",
                                  "--retries", "0", "--output-dir", str(out), "--flush-session", "--disable-coloring"],
                       timeout_seconds)
    results = sorted(out.glob("results-*.csv"))
    if not results:
        raise ScannerError(f"sqlmap: wrote no results CSV in {out}: {_tail(done.stdout)}")
    return parse_sqlmap(results[-1].read_text(), done.stdout, color)


def run_schemathesis(color: str, openapi: Path | str, base_url: str, out_dir: Path, max_examples: int = 10,
                     timeout_seconds: float = 180) -> list[Finding]:
    """Fuzz one color against an OpenAPI document (a file, or the URL the app serves it at).
    schemathesis exits 1 when it finds failures: the JUnit report decides."""
    base = loopback_base_url(base_url)
    junit = Path(out_dir) / f"schemathesis-{color}.xml"
    junit.unlink(missing_ok=True)
    schemathesis = str(Path(sys.executable).with_name("schemathesis"))
    run_scanner("schemathesis", [schemathesis, "run", str(openapi), "--url", base, "-n", str(max_examples),
                                 "--max-failures", "50", "--request-timeout", "5", "--workers", "1",
                                 "--report", "junit", "--report-junit-path", str(junit)], timeout_seconds, ok_codes=(0, 1))
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
