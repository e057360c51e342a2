"""The post-launch report as one self-contained HTML page (charts beside it as PNG files). Pure.

Every value from the run goes through :func:`esc` (task reasons, gate lines and operator reasons
are free text, an emergency stop's reason is typed by a person). Sections for stage 6 (load test)
and stage 7 (security) appear only when the record holds them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from cutover_kit.report.compliance import compliance_by_step
from cutover_kit.report.lessons import lessons
from cutover_kit.report.record import RunRecord, format_duration

CHART_TITLES = {
    "traffic_share": "Traffic share over time, with step markers",
    "error_ratio": "Error ratio per color",
    "latency": "p50 / p95 / p99 per color",
    "slo_compliance": "SLO compliance of green against blue, per step",
    "timeline": "Timeline",
}
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;font-size:13px}
th{background:#f3f3f3}.promoted{color:#1a7f37}.rolled_back{color:#b35900}.failed{color:#c00}.note{color:#666;font-style:italic}
img{max-width:100%;border:1px solid #eee;margin-bottom:1em}"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def utc(epoch: float | None) -> str:
    if epoch is None:
        return "not recorded"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds(value: float | None, digits: int = 3) -> str:
    """Gate and run durations in seconds; rollback timings go through format_duration (ms under 1 s)."""
    return "–" if value is None else f"{value:.{digits}f} s"


def timing(value: float | None) -> str:
    return "–" if value is None else format_duration(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def section(title: str, body: str) -> str:
    return f"<h2>{esc(title)}</h2>\n{body}\n"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def summary_section(record: RunRecord) -> str:
    plan = record.plan or {}
    duration = (record.ended_at - record.started_at) if record.started_at and record.ended_at else None
    rows = [
        ("DAG / run", f"{record.dag_id} / {record.run_id}"),
        ("outcome", record.outcome or "unknown"),
        ("reason", record.outcome_reason),
        ("started", utc(record.started_at)),
        ("report written", utc(record.ended_at)),
        ("duration", seconds(duration, 0)),
        ("plan", plan.get("name", "not recorded (stage 1 did not validate a plan)")),
        ("steps", " -> ".join(f"{s} %" for s in plan.get("steps", [])) or "–"),
        ("bake / standby / window", f"{plan.get('bake_seconds', '–')} s / {plan.get('standby_seconds', '–')} s / "
                                    f"{plan.get('window_seconds', '–')} s" if plan else "–"),
        ("SLO", ", ".join(f"{k} {v}" for k, v in (plan.get("slo") or {}).items()) or "–"),
        ("flag backend / metric templates", f"{plan.get('flag_backend', '–')} / {plan.get('metric_templates') or 'inline'}" if plan else "–"),
    ]
    outcome_class = esc(record.outcome or "failed")
    return (f'<h1>Post-launch report: <span class="{outcome_class}">{esc(record.outcome or "unknown")}</span></h1>\n'
            + table(("", ""), rows))


def charts_section(charts: Mapping[str, str | None], chart_errors: Mapping[str, str]) -> str:
    parts = []
    for name, title in CHART_TITLES.items():
        parts.append(f"<h3>{esc(title)}</h3>")
        if charts.get(name):
            parts.append(f'<img src="{esc(charts[name])}" alt="{esc(title)}">')
        else:
            parts.append(note(f"chart not rendered: {chart_errors.get(name, 'not requested')}"))
    return section("Charts", "\n".join(parts))


def compliance_section(record: RunRecord) -> str:
    rows = [(row.step, row.gate_status, row.samples,
             "–" if row.green_percent is None else f"{row.green_percent:.0f} %",
             "–" if row.blue_percent is None else f"{row.blue_percent:.0f} %") for row in compliance_by_step(record)]
    body = note("Samples of the metric series during each step (from its weights to the next change of green's "
                "share); the gate's own statistics decide, this is the view from outside.")
    return section("SLO compliance per step", body + (table(("step", "gate", "samples", "green vs blue", "blue own SLO"), rows)
                                                      if rows else note("no traffic step")))


def gates_section(record: RunRecord) -> str:
    rows = [(g.step, g.status, g.verdict, g.polls, seconds(g.elapsed_seconds, 1), seconds(g.detection_seconds, 1),
             utc(g.decided_at), g.line or g.reason) for g in record.gates]
    body = table(("step", "decision", "last verdict", "polls", "gate time", "since weights", "decided", "line"), rows) if rows \
        else note("no gate decided in this run")
    return section("Gate decisions", body)


def weights_section(record: RunRecord) -> str:
    rows = [(utc(w.at), f"{w.green_percent:g} %", w.source) for w in record.weights]
    return section("Weights timeline (green's share)", table(("at", "green", "set by"), rows) if rows
                   else note("no weight change recorded"))


def rollback_section(record: RunRecord) -> str:
    parts = []
    drill = record.drill
    if drill is None:
        parts.append(note("The rollback drill (stage 8) did not run."))
    else:
        parts.append(table(("drill verdict", "rollback", "reason"),
                           [(drill.verdict, timing(drill.rollback_seconds), drill.reason)]))
    rollback = record.rollback
    if rollback is None:
        parts.append(note("No rollback: no step halted."))
    else:
        verified = {True: "verified", False: "NOT verified", None: "not recorded"}[rollback.verified]
        parts.append(table(("halted at", "decided", "flags -> Rails", "traffic -> blue", "blue serving alone", "reason"),
                           [(rollback.step, utc(rollback.decided_at), timing(rollback.flags_seconds),
                             timing(rollback.traffic_seconds), verified, rollback.reason)]))
        if rollback.emergency_stop:
            parts.append(note(f"Emergency stop {rollback.emergency_stop}"))
    return section("Rollback drill and rollback timings", "\n".join(parts))


def validation_section(record: RunRecord) -> str:
    validation = record.data_validation
    if validation is None:
        return section("Data validation (Great Expectations)", note("did not run in this run"))
    if validation.error:
        return section("Data validation (Great Expectations)", note(f"failed without a summary: {validation.error}"))
    body = table(("expectations", "failed", "time", "failed expectations"),
                 [(validation.expectations, validation.failed, seconds(validation.seconds, 1),
                   ", ".join(validation.failed_names) or "none")])
    if validation.lines:
        body += "<details><summary>every expectation</summary><ul>" + "".join(
            f"<li>{esc(line)}</li>" for line in validation.lines) + "</ul></details>"
    return section("Data validation (Great Expectations)", body)


def load_test_section(load_test: Mapping[str, Any]) -> str:
    rows = [(color, (load_test.get(color) or {}).get("knee_rps"), (load_test.get(color) or {}).get("p95_at_peak_ms"),
             (load_test.get(color) or {}).get("saturated"), (load_test.get(color) or {}).get("knee_reason"))
            for color in ("blue", "green")]
    return section("Load test (stage 6)", table(("color", "knee (rps)", "p95 at peak (ms)", "saturated", "knee"), rows)
                   + table(("verdict", "reason"), [(load_test.get("verdict"), load_test.get("reason"))]))


def security_section(security: Mapping[str, Any]) -> str:
    body = table(("verdict", "reason"), [(security.get("verdict"), security.get("reason"))])
    blocking = security.get("blocking") or []
    if blocking:
        body += table(("severity", "id", "color", "where", "evidence"),
                      [(f.get("severity"), f.get("id"), f.get("color"), f.get("where"), f.get("evidence")) for f in blocking])
    worse = security.get("worse_than_blue") or []
    if worse:
        body += "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in worse) + "</ul>"
    return section("Security findings (stage 7)", body)


def stages_section(record: RunRecord) -> str:
    rows = [(s.task_id, s.state or "–", s.verdict or "–", s.reason) for s in record.stages]
    return section("Every task", table(("task", "state", "verdict", "reason"), rows))


def render_html(record: RunRecord, charts: Mapping[str, str | None], chart_errors: Mapping[str, str] | None = None,
                record_file: str | None = None) -> str:
    """The page; ``charts`` maps a chart name to its file path relative to the page (None: not rendered)."""
    parts = [summary_section(record),
             section("Lessons learned", "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in lessons(record)) + "</ul>"),
             charts_section(charts, chart_errors or {}),
             compliance_section(record), gates_section(record), weights_section(record), rollback_section(record),
             validation_section(record)]
    if record.load_test is not None:
        parts.append(load_test_section(record.load_test))
    if record.security is not None:
        parts.append(security_section(record.security))
    parts.append(stages_section(record))
    if record_file:
        parts.append(note(f"The record behind this page: {record_file}"))
    title = f"Post-launch report {record.dag_id} {record.run_id}"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(parts) + "</body></html>\n")
