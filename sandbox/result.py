"""rehearsal-result.json: built from what the run recorded, by pure functions (no Airflow, no I/O).

Public fields (stable; add, don't rename): scenario, outcome, final_weights, stages,
detection_seconds, rollback_seconds, requests, writes. Extra fields: expected, behaved_as_expected, load_test (stage 6: per color knee_rps,
p95_at_peak_ms, p95_at_knee_ms, saturated, knee_reason; verdict, reason, seconds per color), security (stage 7:
findings, blocking, verdict, reason; worse_than_blue, incomplete, scanners {name: {seconds, findings}}, counts),
reason, drill_rollback_seconds, fault_onsets, wall_seconds, plan, flags_rollback_seconds (decision ->
every app serves Rails; the first rollback level, before traffic moves), served_by (requests per
implementation that answered: rails, typescript, none), report (stage 15's post-launch report:
{html, charts: {name: png path}}, null when the report task did not write one), apps (per color: the runtime the running
app reported, e.g. "ruby 3.1.2 / puma 5.6.5 / rails 6.1.7.10", the version of its source, and
its processes' resident memory at the end of the run, rss_mb).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cutover_kit.outcome import final_outcome

STATE_VERDICTS = {
    "success": "PASS",
    "failed": "FAIL",
    "upstream_failed": "NOT_RUN",
    "skipped": "SKIPPED",
    "removed": "SKIPPED",
}


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    state: str | None
    started_at: datetime | None
    ended_at: datetime | None
    return_value: Any = None
    gate_result: dict[str, Any] | None = None
    smoke_result: dict[str, Any] | None = None
    validation_failure: dict[str, Any] | None = None
    load_test: dict[str, Any] | None = None
    load_test_failure: dict[str, Any] | None = None
    security: dict[str, Any] | None = None
    security_failure: dict[str, Any] | None = None


def stage_row(record: TaskRecord) -> dict[str, Any]:
    value = record.return_value if isinstance(record.return_value, dict) else {}
    detail = (record.gate_result or record.smoke_result or record.validation_failure or record.load_test
              or record.load_test_failure or record.security or record.security_failure or value)
    verdict = value.get("verdict") if record.state == "success" and value.get("verdict") else STATE_VERDICTS.get(record.state or "", record.state or "NOT_RUN")
    if record.gate_result and record.gate_result.get("status") != "success":
        verdict = "FAIL" if record.gate_result.get("status") == "failed" else "INCONCLUSIVE"
    if isinstance(record.return_value, str):  # a branch: say where it went
        detail = {"reason": f"-> {record.return_value}"}
    return {
        "name": record.task_id,
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
        "verdict": verdict,
        "reason": detail.get("line") or detail.get("reason") or "",
    }


def _find(records: list[TaskRecord], suffix: str) -> TaskRecord | None:
    return next((record for record in records if record.task_id.endswith(suffix)), None)


def data_validation_summary(record: TaskRecord | None) -> dict[str, Any] | None:
    """{expectations, failed, seconds} from the GX task, passed or failed."""
    if record is None or record.state not in ("success", "failed"):
        return None
    if isinstance(record.return_value, dict) and "expectations" in record.return_value:
        value = record.return_value
        return {"expectations": value["expectations"], "failed": value["failed"], "seconds": value.get("seconds")}
    reason = (record.validation_failure or {}).get("reason", "")
    match = re.search(r"(\d+) of (\d+) expectations", reason)
    if match:
        return {"expectations": int(match.group(2)), "failed": int(match.group(1)), "seconds": None}
    return {"expectations": None, "failed": None, "seconds": None, "error": reason or record.state}


def load_test_block(record: TaskRecord | None) -> dict[str, Any] | None:
    """Stage 6's `load_test` block: per color knee_rps, p95_at_peak_ms, ...; verdict and reason.
    A run that could not measure gives verdict "fail" and its reason; None when stage 6 never ran."""
    if record is None or record.state not in ("success", "failed"):
        return None
    summary = record.load_test or (record.return_value if isinstance(record.return_value, dict) else None)
    if summary and "blue" in summary:
        return {key: summary[key] for key in ("blue", "green", "verdict", "reason", "plan", "seconds", "requests", "artifacts",
                                              "stress_finding") if key in summary}
    reason = (record.load_test_failure or {}).get("reason") or f"run_load_test {record.state} without a summary"
    return {"verdict": "fail", "reason": reason}


SECURITY_FIELDS = ("findings", "blocking", "verdict", "reason", "worse_than_blue", "incomplete", "scanners", "counts",
                   "blocking_severity")


def security_block(record: TaskRecord | None) -> dict[str, Any] | None:
    """Stage 7's `security` block from its judge: findings, blocking, verdict, reason (and the
    details behind them). None when stage 7 never ran; a judge without a summary gives verdict
    "fail" and why."""
    if record is None or record.state not in ("success", "failed"):
        return None
    if record.security:
        return {key: record.security[key] for key in SECURITY_FIELDS if key in record.security}
    reason = (record.security_failure or {}).get("reason") or f"the security judge {record.state} without a summary"
    return {"findings": [], "blocking": [], "verdict": "fail", "reason": reason}


def backup_summary(record: TaskRecord | None) -> dict[str, Any] | None:
    if record is None or not isinstance(record.return_value, dict):
        return None
    return {
        "bytes": record.return_value.get("bytes"),
        "verified": bool(record.return_value.get("verified")),
        "path": record.return_value.get("path"),
        "sha256": record.return_value.get("sha256"),
    }


def report_summary(record: TaskRecord | None) -> dict[str, Any] | None:
    """{html, charts} from stage 15's write_report (its return value), or None without a report."""
    if record is None or not isinstance(record.return_value, dict) or not record.return_value.get("html"):
        return None
    return {"html": record.return_value["html"], "charts": dict(record.return_value.get("charts") or {})}
# app_info{color="blue",runtime="ruby",version="3.1.2",rails="6.1.7.10",puma="5.6.5"} 1
_APP_INFO_LINE = re.compile(r"^app_info\{(?P<labels>[^}]*)\}\s+\S+", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_app_info(exposition: str) -> list[tuple[str, str]]:
    """The labels of the app_info sample in a /metrics answer, in the app's order; [] if none."""
    found = _APP_INFO_LINE.search(exposition)
    return _LABEL.findall(found.group("labels")) if found else []


def app_runtime(labels: list[tuple[str, str]]) -> str:
    """"ruby 3.1.2 / puma 5.6.5 / rails 6.1.7.10" from app_info's labels: the runtime and its
    version first, then every other component with its version, by name (client libraries
    differ in the order they print labels: prometheus-client-mmap sorts them, prom-client not)."""
    named = dict(labels)
    if "runtime" not in named or "version" not in named:
        raise ValueError(f"app_info has no runtime and version labels: {labels}")
    parts = [f"{named['runtime']} {named['version']}"]
    parts += [f"{name} {value}" for name, value in sorted(labels) if name not in ("color", "runtime", "version")]
    return " / ".join(parts)


def build_result(
    *,
    scenario: dict[str, Any],
    records: list[TaskRecord],
    final_weights: dict[str, int],
    fault_onsets: list[dict[str, Any]],
    traffic_report: dict[str, Any],
    wall_seconds: float,
    apps: dict[str, dict[str, Any]] | None = None,
    first_bad_write_at: float | None = None,
    notifications: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    ran = sorted((r for r in records if r.started_at), key=lambda r: (r.started_at, r.task_id))
    halt = next(
        (r.return_value for r in records if ".halt_at_" in r.task_id and isinstance(r.return_value, dict)), None
    )
    promote = _find(records, ".promote")
    route_back = _find(records, "rollback.route_all_to_blue")
    flags_back = _find(records, "rollback.flags_to_rails")
    verify_back = _find(records, "rollback.verify_blue_serving")
    if not (verify_back and verify_back.return_value):
        verify_back = _find(records, "database_rollback.down_migration_verified")
    drill = _find(records, ".rollback_drill")
    failed = sorted(
        r.task_id for r in records if r.state == "failed" and r.task_id not in ("cutover_verdict", "verify_data_integrity")
    )
    outcome = final_outcome(
        promote.return_value if promote else None,
        halt,
        verify_back.return_value if verify_back else None,
        failed,
        integrity_failed=any(r.task_id == "verify_data_integrity" and r.state == "failed" for r in records),
    )

    decided_at = halt.get("decided_at") if halt else None
    first_onset = min((onset["start"] for onset in fault_onsets), default=None)
    detection = None
    if decided_at is not None and first_onset is not None and decided_at >= first_onset:
        detection = round(decided_at - first_onset, 3)
    restored_at = halt.get("traffic_restored_at") if halt else None
    if restored_at is None and route_back and isinstance(route_back.return_value, dict):
        restored_at = route_back.return_value.get("verified_at")
    rollback = round(restored_at - decided_at, 3) if decided_at is not None and restored_at is not None else None
    # Same rule for the first level: the reflex's verified flip, else the rollback task's.
    flags_restored_at = halt.get("flags_restored_at") if halt else None
    if flags_restored_at is None and flags_back and isinstance(flags_back.return_value, dict):
        flags_restored_at = flags_back.return_value.get("verified_at")
    flags_rollback = (round(flags_restored_at - decided_at, 3)
                      if decided_at is not None and flags_restored_at is not None else None)

    expected = scenario.get("expect_outcome")
    reason_needle = scenario.get("expect_reason_contains")
    behaved = outcome.outcome == expected and (not reason_needle or reason_needle in outcome.reason)
    lost_unexplained = traffic_report.get("writes_lost_not_injected", traffic_report.get("writes_lost", 0))
    behaved = behaved and traffic_report.get("failed_not_injected", 0) == 0 and lost_unexplained == 0

    return {
        "scenario": scenario["name"],
        "outcome": outcome.outcome,
        "reason": outcome.reason,
        "expected": {"outcome": expected, "reason_contains": reason_needle},
        "behaved_as_expected": behaved,
        "final_weights": final_weights,
        "stages": [stage_row(record) for record in ran],
        "detection_seconds": detection,
        "rollback_seconds": rollback,
        "flags_rollback_seconds": flags_rollback,
        "drill_rollback_seconds": (drill.return_value or {}).get("rollback_seconds") if drill else None,
        "requests": {
            "total": traffic_report.get("total", 0),
            "failed": traffic_report.get("failed", 0),
            "failed_injected": traffic_report.get("failed_injected", 0),
            "failed_not_injected": traffic_report.get("failed_not_injected", 0),
            "failed_not_injected_samples": traffic_report.get("failed_not_injected_samples", []),
        },
        "writes": {
            "acknowledged": traffic_report.get("writes_acknowledged", 0),
            "lost": traffic_report.get("writes_lost", 0),
            "lost_injected": traffic_report.get("writes_lost_injected", 0),
        },
        "served_by": traffic_report.get("by_served_by", {}),
        "data_validation": data_validation_summary(_find(records, ".validate_with_great_expectations")),
        "backup": backup_summary(_find(records, ".backup_and_verify")),
        "load_test": load_test_block(_find(records, "stage_06_load_testing.run_load_test")),
        "security": security_block(_find(records, "stage_07_security_audit.judge")),
        "fault_onsets": fault_onsets,
        "wall_seconds": round(wall_seconds, 1),
        "plan": scenario.get("plan"),
        "report": report_summary(_find(records, "stage_15_post_launch.write_report")),
        "apps": apps or {},
        # Data faults: from the first damaged write (its time in the database, or the client's
        # time for a dropped one) to the gate's decision.
        "first_bad_write_at": first_bad_write_at,
        "detection_from_first_bad_write_seconds": (round(decided_at - first_bad_write_at, 3)
                                                    if decided_at is not None and first_bad_write_at is not None else None),
        # What the cutover_notifications webhook received, in order ({at, kind, step, text}, sandbox.notifications).
        "notifications": notifications or [],
    }


def render_table(result: dict[str, Any]) -> str:
    lines = [f"{'stage / task':58} {'verdict':12} reason"]
    for stage in result["stages"]:
        reason = stage["reason"] if len(stage["reason"]) <= 110 else stage["reason"][:107] + "..."
        lines.append(f"{stage['name']:58} {stage['verdict']:12} {reason}")
    requests, writes = result["requests"], result["writes"]
    lines += [
        "",
        f"scenario {result['scenario']}: {result['outcome']} (expected {result['expected']['outcome']}) - {result['reason']}",
        f"final weights {result['final_weights']}; detection {result['detection_seconds']} s; "
        f"flags rollback {result.get('flags_rollback_seconds')} s; rollback {result['rollback_seconds']} s; "
        f"drill rollback {result['drill_rollback_seconds']} s",
        f"served by {result.get('served_by')}",
        f"requests {requests['total']} total, {requests['failed']} failed "
        f"({requests['failed_not_injected']} not injected); writes {writes['acknowledged']} acknowledged, {writes['lost']} lost",
        f"post-launch report: {(result.get('report') or {}).get('html') or 'not written'}",
        "BEHAVED AS EXPECTED" if result["behaved_as_expected"] else "DID NOT BEHAVE AS EXPECTED",
    ]
    return "\n".join(lines)
