"""Each chart is a valid PNG with the run's data drawn in it; a chart with nothing to draw says
"no data" and why, instead of an empty frame."""

from __future__ import annotations

import json

import pytest

from cutover_kit.report.charts import CHARTS, render_png, step_marker_rows, timeline_rows
from cutover_kit.report.record import RunRecord
from tests.unit.cutover_kit.report.png import SIGNATURE, count_near, size
from tests.unit.cutover_kit.report.records import T0, promoted_record, rolled_back_record

BLUE, GREEN, RED = (0x1F, 0x77, 0xB4), (0x2C, 0xA0, 0x2C), (0xD6, 0x27, 0x28)
# The legend's swatch alone is far below this: only drawn data reaches it.
DRAWN = 300


@pytest.fixture(scope="module")
def rolled_back_pngs():
    record = rolled_back_record()
    return {name: render_png(build(record)) for name, build in CHARTS.items()}


@pytest.mark.parametrize("name", list(CHARTS))
def test_each_chart_is_a_png_of_a_readable_size(rolled_back_pngs, name):
    png = rolled_back_pngs[name]
    assert png.startswith(SIGNATURE)
    width, height = size(png)
    assert 600 <= width <= 1200 and 100 <= height <= 600, (width, height)
    assert len(png) > 10_000


@pytest.mark.parametrize("name, colors", [
    ("traffic_share", (BLUE, GREEN)), ("error_ratio", (BLUE, GREEN)), ("latency", (BLUE, GREEN)),
    ("slo_compliance", (BLUE, GREEN)), ("timeline", (GREEN, RED)),
])
def test_each_chart_draws_the_run(rolled_back_pngs, name, colors):
    for rgb in colors:
        assert count_near(rolled_back_pngs[name], rgb) > DRAWN, f"{name}: too few pixels of {rgb}"


@pytest.mark.parametrize("name", list(CHARTS))
def test_an_empty_run_says_no_data_instead_of_an_empty_chart(name):
    empty = RunRecord("cutover", "r", T0, T0 + 10, None, "", series_note="Prometheus unavailable: refused")
    chart = CHARTS[name](empty)
    assert "no data" in json.dumps(chart.to_dict())
    png = render_png(chart)
    assert png.startswith(SIGNATURE)
    assert count_near(png, GREEN) == 0 and count_near(png, BLUE) == 0  # nothing drawn, only the note


def test_the_series_note_is_the_reason_given():
    empty = RunRecord("cutover", "r", T0, T0 + 10, None, "", series_note="Prometheus unavailable: refused")
    assert "Prometheus unavailable: refused" in json.dumps(CHARTS["error_ratio"](empty).to_dict())


def test_step_markers_and_timeline_rows_are_seconds_since_the_start():
    record = rolled_back_record()
    assert [(row["t"], row["label"]) for row in step_marker_rows(record)][:2] == [(10.0, "5 %"), (80.0, "25 %")]
    bars, events = timeline_rows(record)
    assert [(b["lane"], b["status"]) for b in bars] == [("gate 5 %", "success"), ("gate 25 %", "failed")]
    rollback = [e for e in events if e["lane"] == "rollback"]
    assert len(rollback) == 1 and "flags -> Rails +60.0 ms" in rollback[0]["what"]


def test_a_change_to_the_share_in_force_adds_no_marker_and_labels_alternate():
    rows = step_marker_rows(rolled_back_record())
    # 5 %, 25 %, then the reflex's 0 %; the rollback task's later 0 % changes nothing.
    assert [(row["label"], row["row"]) for row in rows] == [("5 %", 0), ("25 %", 1), ("0 %", 0)]


def test_a_promoted_run_has_no_rollback_lane():
    _, events = timeline_rows(promoted_record())
    assert not [e for e in events if e["lane"] == "rollback"]


def test_the_timeline_spans_the_traffic_steps_with_room_for_labels():
    from cutover_kit.report.charts import timeline_domain

    bars, events = timeline_rows(rolled_back_record())
    start, end = timeline_domain(bars, events)
    # From the 5 % weights (+10 s) to the reflex's 0 % (+97.59 s), 5 % margin left, 30 % right.
    assert start == pytest.approx(10 - 0.05 * 87.59) and end == pytest.approx(97.59 + 0.3 * 87.59)
