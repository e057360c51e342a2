"""Stage 7, security audit (task group ``stage_07_security_audit``): before any traffic moves, both
colors' *stage instances* (the ones stage 6 loaded, on the copy of the database) are audited and
compared; the run halts with green at 0 % on a blocking finding on green (or its code) or on any
check where green is worse than blue (cutover_kit.security.judge).

Tasks (the first five side by side, each idempotent: they only read the stage instances, whose
writes land in the copy, and the code):
* ``http_checks``: per color, passive ZAP-rule checks on every GET route of its own OpenAPI
  document, auth refusal of the protected routes (plan + routes the documents mark secured), the
  error-leakage probes; then the route surface of the two documents.
* ``scan_schemathesis``, ``scan_wapiti``, ``scan_sqlmap``: the scanner against each color, bounded
  by the plan's ``scanner_seconds``; ``scan_bandit`` over the project's Python, ``scan_npm_audit``
  over the TypeScript lock. A scanner the plan does not list is skipped (said in the log); a
  listed one that is missing, crashes or times out fails its task with the reason.
* ``judge``: every finding, one log line each, the verdict line; the ``security`` block in XCom
  (findings, blocking, verdict, reason). A halt, or a listed scanner without a result, fails it.
Then ``decide_after_security_audit`` (verdict.py; rule outcome.choose_after_security_audit): the
drill, or ``rollback.halt_at_security_audit`` and the usual rollback path. Stage 6's
``stop_stage_instances`` runs after the judge (ALL_DONE), whatever happened.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from cutover_kit.paths import REPO_ROOT
from cutover_kit.stages._shared import plan_of_run
from cutover_kit.stages.load_testing import COLORS, NEVER_STARTED, OWN_CODE, artifact_dir_for

log = logging.getLogger(__name__)

SUMMARY_KEY = "security"
FAILURE_KEY = "security_failure"
ARTIFACT_ENV = "CUTOVER_SECURITY_ARTIFACT_DIR"
DEFAULT_ARTIFACT_ROOT = REPO_ROOT / ".artifacts" / "security"
SAMPLE_ID = 1  # the datagen's first user and order: a route with an id answers a real row
DEFAULT_EXAMPLES = 5
# One scan task per scanner (the plan's `scanners` names), task id scan_<name>.
SCANNERS = ("schemathesis", "wapiti", "sqlmap", "bandit", "npm_audit")
BANDIT_PATHS = ("dags", "plugins", "include")
TYPESCRIPT_LOCK_DIR = REPO_ROOT / "sandbox" / "apps" / "typescript"
# The GET routes with an id that sqlmap attacks (its '*' marks the injection point).
SQLMAP_PATHS = ("/api/users/{id}*", "/api/orders/{id}*")


# --------------------------------------------------------------------------------------- pure


def security_settings(security: Mapping[str, Any] | None) -> dict[str, Any]:
    """The plan's `security` section, or a clear refusal: stage 7 never passes without one."""
    if not security:
        raise ValueError("the plan has no security section (blocking_severity, scanners, scanner_seconds): "
                         "stage 7 cannot judge green's security")
    return dict(security)


def own_headers(color: str) -> dict[str, str]:
    """A direct request asks each color to serve its own code (green's flags are still at Rails
    before traffic moves: without it the stage green would forward to the stage blue)."""
    return {"X-Cutover-Serve": OWN_CODE[color]}


def missing_results(settings: Mapping[str, Any], results: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Listed scanners without a result (their task failed or never ran): each one a reason."""
    ran = {name for result in results.values() if result for name in (result.get("scanners") or {})}
    return [name for name in settings["scanners"] if name not in ran]


def security_summary(settings: Mapping[str, Any], results: Mapping[str, Mapping[str, Any] | None],
                     failures: Mapping[str, str]) -> dict[str, Any]:
    """The `security` block: every finding, the judge's verdict, and a halt when a check or a
    listed scanner gave no result (a scan that did not happen is never a pass)."""
    from cutover_kit.security.findings import normalise
    from cutover_kit.security.judge import HALT, judge_security

    findings = [normalise(raw) for result in results.values() if result for raw in result.get("findings") or []]
    verdict = judge_security(findings, settings["blocking_severity"]).as_dict()
    unaudited = [f"{task}: {reason}" for task, reason in sorted(failures.items())]
    unaudited += [f"{name} gave no result" for name in missing_results(settings, results)
                  if not any(name in reason for reason in failures.values())]
    if unaudited and verdict["verdict"] != HALT:
        verdict.update(verdict=HALT, reason="Halt before traffic: the audit is incomplete: " + "; ".join(unaudited))
    scanners = {name: facts for result in results.values() if result for name, facts in (result.get("scanners") or {}).items()}
    return {
        "findings": [finding.as_dict() for finding in findings],
        "blocking": verdict["blocking"],
        "verdict": verdict["verdict"],
        "reason": verdict["reason"],
        "worse_than_blue": verdict["worse_than_blue"],
        "incomplete": unaudited,
        "scanners": scanners,
        "counts": {color: sum(1 for f in findings if f.color == color) for color in ("blue", "green", "code")},
        "blocking_severity": settings["blocking_severity"],
    }


def verdict_line(summary: Mapping[str, Any]) -> str:
    counts = summary["counts"]
    return (f"Security audit {summary['verdict'].upper()}: {summary['reason']} "
            f"(findings: blue {counts['blue']}, green {counts['green']}, code {counts['code']}; "
            f"blocking severity {summary['blocking_severity']})")


def security_artifact_dir(run_id: str | None) -> Path:
    return artifact_dir_for(run_id, os.environ.get(ARTIFACT_ENV) or DEFAULT_ARTIFACT_ROOT)


# --------------------------------------------------------------------------------------- tasks


def _stage_urls(start_task_id: str) -> dict[str, str]:
    from airflow.sdk import get_current_context

    started = get_current_context()["ti"].xcom_pull(task_ids=start_task_id) or {}
    urls = {color: (started.get("instances") or {}).get(color, {}).get("url") for color in COLORS}
    if not all(urls.values()):
        raise ValueError(f"no stage instance URL from {start_task_id}: {urls} (stage 7 audits the instances stage 6 started)")
    return urls


def _fail(reason: str, error: Exception) -> None:
    from airflow.sdk import get_current_context

    get_current_context()["ti"].xcom_push(key=FAILURE_KEY, value={"reason": reason})
    raise AirflowFailException(f"Security audit incomplete: {reason}") from error


def http_checks(plan_task_id: str, start_task_id: str) -> dict[str, Any]:
    from cutover_kit.security.audit import audit_color, finding_counts, protected_routes_of
    from cutover_kit.security.surface import surface_findings

    started = time.monotonic()
    try:
        settings = security_settings(plan_of_run(plan_task_id).security)
        urls = _stage_urls(start_task_id)
        declared = settings.get("protected_routes") or []
        documents, findings = {}, []
        for color in COLORS:
            documents[color], found = audit_color(color, urls[color], own_headers(color), declared, SAMPLE_ID)
            findings += found
        # The secured routes either document declares are checked on both colors too.
        extra = [route for route in protected_routes_of(documents.values(), declared) if route not in declared]
        if extra:
            from cutover_kit.security.audit import auth_refusal_findings, http_sender

            for color in COLORS:
                findings += auth_refusal_findings(color, http_sender(urls[color], own_headers(color)), extra, SAMPLE_ID)
        findings += surface_findings(documents["blue"], documents["green"], tuple(settings.get("surface_ignore") or ()))
    except Exception as error:  # noqa: BLE001 - any failure to audit is a clear stage failure, never a pass
        _fail(f"http_checks could not audit the stage instances: {type(error).__name__}: {error}", error)
    counts = finding_counts(findings)
    routes = {color: len(documents[color].get("paths") or {}) for color in COLORS}
    reason = (f"HTTP checks done in {time.monotonic() - started:.1f} s: passive ZAP rules on every GET route "
              f"(blue {routes['blue']} paths, green {routes['green']}), auth refusal of "
              f"{len(protected_routes_of(documents.values(), declared))} protected route(s), leakage probes, route surface; "
              f"findings blue {counts.get('blue', 0)}, green {counts.get('green', 0)}")
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "findings": [f.as_dict() for f in findings],
            "scanners": {}, "seconds": round(time.monotonic() - started, 2)}


def run_scanner(name: str, plan_task_id: str, start_task_id: str) -> dict[str, Any]:
    """Task scan_<name>: one scanner against both colors' stage instances, or over the code."""
    from airflow.sdk import get_current_context

    from cutover_kit.security import scanners as tools

    try:
        settings = security_settings(plan_of_run(plan_task_id).security)
    except ValueError as error:
        _fail(str(error), error)
    if name not in settings["scanners"]:
        raise AirflowSkipException(f"{name} is not in the plan's security.scanners {list(settings['scanners'])}: not run")
    bound = settings["scanner_seconds"]
    out_dir = security_artifact_dir(get_current_context()["run_id"])
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        if name == "bandit":
            findings = tools.run_bandit([REPO_ROOT / path for path in BANDIT_PATHS], REPO_ROOT, timeout_seconds=bound)
        elif name == "npm_audit":
            findings = tools.run_npm_audit(TYPESCRIPT_LOCK_DIR, timeout_seconds=bound)
        else:
            urls = _stage_urls(start_task_id)
            findings = []
            for color in COLORS:
                findings += _scan_color(tools, name, color, urls[color], out_dir, settings)
    except (tools.ScannerError, ValueError) as error:
        _fail(f"{name}: {error}", error)
    seconds = round(time.monotonic() - started, 2)
    reason = f"{name}: {len(findings)} finding(s) in {seconds:.1f} s (bound {bound} s per run)"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "findings": [f.as_dict() for f in findings],
            "scanners": {name: {"seconds": seconds, "findings": len(findings)}}, "artifacts": str(out_dir)}


def _scan_color(tools: Any, name: str, color: str, url: str, out_dir: Path, settings: Mapping[str, Any]) -> list:
    bound = settings["scanner_seconds"]
    headers = own_headers(color)
    if name == "schemathesis":
        return tools.run_schemathesis(color, f"{url}/openapi.json", url, out_dir,
                                      max_examples=settings.get("schemathesis_examples", DEFAULT_EXAMPLES),
                                      timeout_seconds=bound, headers=headers)
    if name == "wapiti":
        starts = tuple(f"{url}{path.replace('{id}', str(SAMPLE_ID)).rstrip('*')}" for path in SQLMAP_PATHS)
        return tools.run_wapiti(color, starts[0], out_dir, max_scan_seconds=bound, headers=headers,
                                extra_start_urls=starts[1:])
    if name == "sqlmap":
        found = []
        for path in SQLMAP_PATHS:  # the time bound holds per run; the paths are few and fixed
            found += tools.run_sqlmap(color, f"{url}{path.replace('{id}', str(SAMPLE_ID))}", out_dir,
                                      timeout_seconds=bound, headers=headers)
        return found
    raise ValueError(f"unknown scanner {name!r}")


def judge_security_audit(plan_task_id: str, http_task_id: str, check_task_ids: list[str]) -> dict[str, Any]:
    """ALL_DONE: skipped when stage 7 never started (stage 6 halted, or an earlier stage failed:
    `http_task_id`, never skipped on purpose, did not run)."""
    from airflow.sdk import get_current_context

    from cutover_kit.security.judge import PASS

    ti = get_current_context()["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    if states.get(http_task_id) in NEVER_STARTED:
        raise AirflowSkipException(f"Stage 7 did not run ({http_task_id} {states.get(http_task_id)}): nothing to judge")
    try:
        settings = security_settings(plan_of_run(plan_task_id).security)
    except ValueError as error:
        summary = {"findings": [], "blocking": [], "verdict": "halt", "reason": f"Halt before traffic: {error}",
                   "incomplete": [str(error)], "scanners": {}, "counts": {"blue": 0, "green": 0, "code": 0},
                   "blocking_severity": None, "worse_than_blue": []}
        ti.xcom_push(key=SUMMARY_KEY, value=summary)
        raise AirflowFailException(f"Security audit HALT: {summary['reason']}") from error
    results = {task: ti.xcom_pull(task_ids=task) for task in check_task_ids}
    failures = {}
    for task in check_task_ids:
        failure = ti.xcom_pull(task_ids=task, key=FAILURE_KEY)
        if failure:
            failures[task.rsplit(".", 1)[-1]] = failure["reason"]
        elif states.get(task) in ("failed", "upstream_failed") and not results.get(task):
            failures[task.rsplit(".", 1)[-1]] = f"task {states.get(task)}"
    summary = security_summary(settings, results, failures)
    for finding in summary["findings"]:
        log.info("Finding [%s] %s %s at %s: %s", finding["severity"], finding["color"], finding["id"], finding["where"],
                 finding["evidence"])
    line = verdict_line(summary)
    ti.xcom_push(key=SUMMARY_KEY, value=summary)
    if summary["verdict"] != PASS:
        raise AirflowFailException(line)
    log.info(line)
    return {"verdict": "PASS", "reason": line, "counts": summary["counts"], "scanners": summary["scanners"]}

