"""The report's charts as altair specifications, and their PNG rendering (vl-convert-python, no
browser). Building a chart is pure (record in, chart out); altair and vl_convert are imported when
a chart is built or drawn, never when the DAG is parsed.

Time runs along x in seconds since the run started (the HTML gives the start in UTC). Every
chart with nothing to draw becomes an explicit "no data" panel naming why, never an empty frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cutover_kit.report.compliance import as_rows, compliance_by_step, slo_policy
from cutover_kit.report.record import COLORS, ERROR_RATIO, LATENCY_MEASURES, TRAFFIC_SHARE, RunRecord, format_duration

COLOR_SCALE = {"domain": list(COLORS), "range": ["#1f77b4", "#2ca02c"]}
WIDTH, HEIGHT = 640, 220
X_TITLE = "seconds since the run started"


def _alt():
    import altair as alt

    return alt


def origin(record: RunRecord) -> float:
    """Time zero of the charts: the run's start, else the first thing it recorded."""
    if record.started_at is not None:
        return record.started_at
    times = [t for s in record.series for t, _ in s.points] + [w.at for w in record.weights]
    return min(times, default=0.0)


def no_data_chart(title: str, why: str) -> Any:
    alt = _alt()
    return (alt.Chart(alt.Data(values=[{"note": f"no data: {why}"}])).mark_text(size=15, color="#555")
            .encode(text="note:N").properties(title=title, width=WIDTH, height=80))


def step_marker_rows(record: RunRecord) -> list[dict[str, Any]]:
    """One marker per change of green's share: when, to what. A change to the share already in
    force (the gate's reflex, then the rollback task, both to 0 %) adds nothing. ``row`` alternates
    0/1 so that labels of changes seconds apart (a step and its halt) do not print over each other."""
    zero = origin(record)
    rows: list[dict[str, Any]] = []
    for change in record.weights:
        if rows and rows[-1]["percent"] == change.green_percent:
            continue
        rows.append({"t": round(change.at - zero, 3), "percent": change.green_percent,
                     "label": f"{change.green_percent:g} %", "source": change.source, "row": len(rows) % 2})
    return rows


def _step_markers(record: RunRecord, alt: Any) -> list[Any]:
    rows = step_marker_rows(record)
    if not rows:
        return []
    base = alt.Chart(alt.Data(values=rows))
    labels = base.mark_text(align="left", dx=3, baseline="top", color="#666", fontSize=10)
    return [base.mark_rule(color="#999", strokeDash=[2, 3]).encode(x="t:Q"),
            labels.transform_filter("datum.row == 0").encode(x="t:Q", y=alt.value(2), text="label:N"),
            labels.transform_filter("datum.row == 1").encode(x="t:Q", y=alt.value(14), text="label:N")]


def series_rows(record: RunRecord, measure: str, scale: float = 1.0) -> list[dict[str, Any]]:
    zero = origin(record)
    return [{"t": round(t - zero, 3), "value": round(v * scale, 6), "color": color}
            for color in COLORS for t, v in record.series_of(measure, color)]


def traffic_share_chart(record: RunRecord) -> Any:
    alt = _alt()
    title = "Traffic share per color (measured requests; dashed: green's router weight)"
    measured = series_rows(record, TRAFFIC_SHARE, 100)
    zero = origin(record)
    weights = [{"t": round(w.at - zero, 3), "value": w.green_percent} for w in record.weights]
    if not measured and not weights:
        return no_data_chart(title, record.series_note or "no requests measured and no weight change recorded")
    color = alt.Color("color:N", scale=alt.Scale(**COLOR_SCALE), title="color")
    y = alt.Y("value:Q", title="share of requests (%)", scale=alt.Scale(domain=[0, 100]))
    layers = []
    if measured:
        layers.append(alt.Chart(alt.Data(values=measured)).mark_line().encode(x=alt.X("t:Q", title=X_TITLE), y=y, color=color))
    if weights:
        layers.append(alt.Chart(alt.Data(values=weights)).mark_line(interpolate="step-after", strokeDash=[6, 4], color="#2ca02c")
                      .encode(x=alt.X("t:Q", title=X_TITLE), y=y))
    return alt.layer(*layers, *_step_markers(record, alt)).properties(title=title, width=WIDTH, height=HEIGHT)


def error_ratio_chart(record: RunRecord) -> Any:
    alt = _alt()
    title = "5xx error ratio per color (red: the plan's ceiling)"
    rows = series_rows(record, ERROR_RATIO, 100)
    if not rows:
        return no_data_chart(title, record.series_note or "no error ratio series for either color")
    ceiling = slo_policy(record)["max_error_ratio"] * 100
    lines = alt.Chart(alt.Data(values=rows)).mark_line().encode(
        x=alt.X("t:Q", title=X_TITLE), y=alt.Y("value:Q", title="5xx (% of requests)"),
        color=alt.Color("color:N", scale=alt.Scale(**COLOR_SCALE), title="color"))
    rule = alt.Chart(alt.Data(values=[{"ceiling": ceiling}])).mark_rule(color="#d62728", strokeDash=[4, 4]).encode(y="ceiling:Q")
    return alt.layer(lines, rule, *_step_markers(record, alt)).properties(title=title, width=WIDTH, height=HEIGHT)


def latency_chart(record: RunRecord) -> Any:
    alt = _alt()
    title = "Latency p50 / p95 / p99 per color"
    rows = [{**row, "quantile": measure} for measure in LATENCY_MEASURES for row in series_rows(record, measure, 1000)]
    if not rows:
        why = record.series_note or "no latency series (the plan's metric templates may have no histogram)"
        return no_data_chart(title, why)
    lines = alt.Chart(alt.Data(values=rows)).mark_line().encode(
        x=alt.X("t:Q", title=X_TITLE), y=alt.Y("value:Q", title="latency (ms)"),
        color=alt.Color("color:N", scale=alt.Scale(**COLOR_SCALE), title="color"),
        strokeDash=alt.StrokeDash("quantile:N", sort=list(LATENCY_MEASURES), title="quantile"),
        detail="quantile:N")
    return alt.layer(lines, *_step_markers(record, alt)).properties(title=title, width=WIDTH, height=HEIGHT)


def compliance_chart(record: RunRecord) -> Any:
    alt = _alt()
    title = "SLO compliance per step: green vs blue, blue vs its own ceiling (% of samples)"
    rows = []
    for row in as_rows(compliance_by_step(record)):
        for who, key in (("green vs blue", "green_percent"), ("blue own SLO", "blue_percent")):
            if row[key] is not None:
                rows.append({"step": row["step"], "who": who, "percent": round(row[key], 1),
                             "label": f"{row[key]:.0f} %"})
    if not rows:
        why = record.series_note or ("no traffic step" if not record.weights else "no error ratio samples during the steps")
        return no_data_chart(title, why)
    steps = list(dict.fromkeys(row["step"] for row in rows))
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("step:N", sort=steps, title="step", axis=alt.Axis(labelAngle=0)), xOffset=alt.XOffset("who:N"),
        y=alt.Y("percent:Q", title="compliant samples (%)", scale=alt.Scale(domain=[0, 105])),
        color=alt.Color("who:N", scale=alt.Scale(domain=["green vs blue", "blue own SLO"], range=["#2ca02c", "#1f77b4"]),
                        title=None))
    return alt.layer(base.mark_bar(), base.mark_text(dy=-6, fontSize=10).encode(text="label:N")).properties(
        title=title, width=WIDTH, height=HEIGHT)


STATUS_COLORS = {"domain": ["success", "failed", "inconclusive", "event"], "range": ["#2ca02c", "#d62728", "#ff7f0e", "#555"]}


def timeline_rows(record: RunRecord) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(gate bars from start to decision, point events) in seconds since the run started."""
    zero = origin(record)
    bars = [{"lane": f"gate {g.step}", "start": round(g.started_at - zero, 3), "end": round(g.decided_at - zero, 3),
             "status": g.status} for g in record.gates if g.started_at is not None]
    events = [{"lane": "weights", "t": row["t"], "what": f"green {row['label']}", "status": "event", "row": row["row"]}
              for row in step_marker_rows(record)]
    rollback = record.rollback
    if rollback is not None and rollback.decided_at is not None:
        # The levels land within milliseconds of the decision: one point, one label with the timings.
        parts = [f"halt at {rollback.step}"]
        for name, seconds in (("flags -> Rails", rollback.flags_seconds), ("traffic -> blue", rollback.traffic_seconds)):
            if seconds is not None:
                parts.append(f"{name} +{format_duration(seconds)}")
        events.append({"lane": "rollback", "t": round(rollback.decided_at - zero, 3), "what": "; ".join(parts),
                       "status": "failed", "row": 0})
    return bars, events


def timeline_domain(bars: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[float]:
    """The x range of the timeline: the traffic steps, not the whole run (the gates are what it shows;
    the stages before them recorded no times), with room on the right for the last label."""
    times = [b["start"] for b in bars] + [b["end"] for b in bars] + [e["t"] for e in events]
    first, last = min(times), max(times)
    span = max(last - first, 1.0)
    return [max(0.0, first - 0.05 * span), last + 0.3 * span]


def timeline_chart(record: RunRecord) -> Any:
    alt = _alt()
    title = "Timeline: gates (start to decision), weight changes, rollback"
    bars, events = timeline_rows(record)
    if not bars and not events:
        return no_data_chart(title, "no gate decided and no weight change recorded")
    lanes = list(dict.fromkeys([b["lane"] for b in bars] + [e["lane"] for e in events]))
    y = alt.Y("lane:N", sort=lanes, title=None)
    x_scale = alt.Scale(domain=timeline_domain(bars, events), nice=False)
    color = alt.Color("status:N", scale=alt.Scale(**STATUS_COLORS), title="gate / event")
    layers = []
    if bars:
        layers.append(alt.Chart(alt.Data(values=bars)).mark_bar(height=12).encode(
            x=alt.X("start:Q", title=X_TITLE, scale=x_scale), x2="end:Q", y=y, color=color))
    if events:
        points = alt.Chart(alt.Data(values=events)).encode(x=alt.X("t:Q", title=X_TITLE, scale=x_scale), y=y)
        # Labels alternate above and below their point, so that close events stay readable.
        layers += [points.mark_point(filled=True, size=60).encode(color=color),
                   points.transform_filter("datum.row == 0").mark_text(align="left", dx=5, dy=-8, fontSize=9, color="#333")
                   .encode(text="what:N"),
                   points.transform_filter("datum.row == 1").mark_text(align="left", dx=5, dy=9, fontSize=9, color="#333")
                   .encode(text="what:N")]
    return alt.layer(*layers).properties(title=title, width=WIDTH, height=max(80, 28 * len(lanes)))


#: The report's charts, in the order the HTML shows them: file stem -> builder.
CHARTS: dict[str, Callable[[RunRecord], Any]] = {
    "traffic_share": traffic_share_chart,
    "error_ratio": error_ratio_chart,
    "latency": latency_chart,
    "slo_compliance": compliance_chart,
    "timeline": timeline_chart,
}


def render_png(chart: Any, scale: float = 1.0) -> bytes:
    import vl_convert as vlc

    return vlc.vegalite_to_png(chart.to_json(), scale=scale)
