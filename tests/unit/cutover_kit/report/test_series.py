"""Range answers -> points, ratios and shares; the range queries come from the plan's templates."""

from __future__ import annotations

import math

import pytest

from cutover_kit.promql import MetricTemplates
from cutover_kit.report.series import (
    matrix_points, measure_series, points_between, range_queries, range_step_seconds, ratio_points, share_points,
)

TEMPLATES = {color: {"requests": f'sum(increase(req{{color="{color}"}}[{{window}}]))',
                     "errors": f'sum(increase(err{{color="{color}"}}[{{window}}]))',
                     "up": f'max(up{{color="{color}"}})',
                     "latency_buckets": f'sum by (le) (rate(lat_bucket{{color="{color}"}}[{{window}}]))'}
             for color in ("blue", "green")}


def test_one_series_becomes_sorted_points_without_nan():
    result = [{"metric": {}, "values": [[20, "2"], [10, "1"], [30, "NaN"], [40, "+Inf"]]}]
    assert matrix_points(result, "green p95") == ((10.0, 1.0), (20.0, 2.0))
    assert matrix_points([], "green p95") == ()


def test_several_series_are_refused_never_summed():
    two = [{"metric": {"le": "0.1"}, "values": [[1, "1"]]}, {"metric": {"le": "0.2"}, "values": [[1, "2"]]}]
    with pytest.raises(ValueError, match="2 series"):
        matrix_points(two, "green requests")
    with pytest.raises(ValueError, match="not \\[time, number\\]"):
        matrix_points([{"metric": {}, "values": [[1, "abc"]]}], "green requests")


def test_ratio_and_share_align_on_time():
    requests = ((1.0, 100.0), (2.0, 0.0), (3.0, 50.0))
    assert ratio_points(((1.0, 5.0),), requests) == ((1.0, 0.05), (3.0, 0.0))  # no 5xx series yet: 0
    assert share_points(((1.0, 25.0), (2.0, 10.0)), ((1.0, 75.0),)) == ((1.0, 0.25), (2.0, 1.0))


def test_range_queries_follow_the_templates_with_and_without_latency():
    queries = range_queries(MetricTemplates(TEMPLATES), 15)
    assert ("requests", "green", 'sum(increase(req{color="green"}[15s]))') in queries
    assert ("p99", "blue", 'histogram_quantile(0.99, sum by (le) (rate(lat_bucket{color="blue"}[15s])))') in queries
    assert len(queries) == 10
    no_latency = {color: {**TEMPLATES[color], "latency_buckets": None} for color in TEMPLATES}
    assert {what for what, _, _ in range_queries(MetricTemplates(no_latency), 15)} == {"requests", "errors"}


def test_measure_series_derives_share_and_error_ratio():
    answers = {("requests", "green"): ((1.0, 20.0),), ("requests", "blue"): ((1.0, 80.0),),
               ("errors", "green"): ((1.0, 2.0),), ("p95", "green"): ((1.0, 0.03),)}
    series = {(measure, color): points for measure, color, points in measure_series(answers)}
    assert series[("traffic_share", "green")] == ((1.0, 0.2),)
    assert series[("error_ratio", "green")] == ((1.0, 0.1),) and series[("error_ratio", "blue")] == ((1.0, 0.0),)
    assert ("p95", "blue") not in series  # no answer: no series, never zeros


def test_step_and_between():
    assert range_step_seconds(600) == 1 and range_step_seconds(3600) == 5 and range_step_seconds(-1) == 1
    assert points_between(((1.0, 1.0), (2.0, 2.0), (3.0, 3.0)), 2.0, None) == ((2.0, 2.0), (3.0, 3.0))
    assert not math.isnan(range_step_seconds(1e6))
