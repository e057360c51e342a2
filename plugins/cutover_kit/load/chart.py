"""PNG chart of a load test: request rate vs p95 and vs error ratio, one line per color, the knee
marked. altair + vl-convert-python render it without a browser; both are imported when drawing
(not at DAG parse)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cutover_kit.load.history import StepFigures
from cutover_kit.load.knee import Knee


def chart_rows(steps_by_color: Mapping[str, list[StepFigures]], knees: Mapping[str, Knee],
               stress_by_color: Mapping[str, StepFigures | None] | None = None) -> list[dict]:
    """One row per step with requests (and per color's stress step, marked `stress`)."""
    rows = []
    for color, steps in steps_by_color.items():
        knee_step = knees[color].step_index if color in knees else None
        stress = (stress_by_color or {}).get(color)
        for step in [*steps, *([stress] if stress is not None else [])]:
            if step.requests:
                rows.append({"color": color, "rate_rps": step.rate_rps, "p95_ms": step.p95_ms,
                             "error_pct": round(100 * (step.error_ratio or 0), 3), "users": step.users,
                             "knee": step.index == knee_step and step is not stress, "stress": step is stress})
    return rows


def write_chart(steps_by_color: Mapping[str, list[StepFigures]], knees: Mapping[str, Knee], path: Path,
                max_p95_ms: float | None = None, stress_by_color: Mapping[str, StepFigures | None] | None = None) -> Path:
    import altair as alt
    import vl_convert as vlc

    rows = chart_rows(steps_by_color, knees, stress_by_color)
    if not rows:
        raise ValueError("no step with requests to chart")
    data = alt.Data(values=rows)
    color = alt.Color("color:N", scale=alt.Scale(domain=["blue", "green"], range=["#1f77b4", "#2ca02c"]))
    x = alt.X("rate_rps:Q", title="request rate (rps)")
    base = alt.Chart(data).encode(x=x, color=color, tooltip=["color:N", "users:Q", "rate_rps:Q", "p95_ms:Q", "error_pct:Q"])
    # Lines follow the load order (users), not the x axis: a saturated app can do fewer rps at more users.
    latency = base.mark_line(point=True).encode(y=alt.Y("p95_ms:Q", title="p95 (ms)"), order="users:Q")
    knee_marks = base.transform_filter("datum.knee").mark_point(shape="diamond", size=200, filled=True).encode(y="p95_ms:Q")
    # The stress step past the knee: a cross at the end of the color's line.
    stress_marks = base.transform_filter("datum.stress").mark_point(shape="cross", size=160, filled=True).encode(y="p95_ms:Q")
    layers = [latency, knee_marks, stress_marks]
    if max_p95_ms is not None:
        layers.append(alt.Chart(alt.Data(values=[{"slo": max_p95_ms}])).mark_rule(strokeDash=[4, 4], color="red")
                      .encode(y="slo:Q"))
    errors = base.mark_line(point=True).encode(y=alt.Y("error_pct:Q", title="errors (%)"), order="users:Q")
    chart = alt.hconcat(alt.layer(*layers).properties(title="rate vs p95", width=360, height=240),
                        errors.properties(title="rate vs errors", width=360, height=240))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(vlc.vegalite_to_png(chart.to_json(), scale=1))
    return path
