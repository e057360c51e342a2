"""Metric series maths for the report: Prometheus range answers -> points, ratios, shares. Pure.

A range query answers a matrix: ``[{"metric": {...}, "values": [[t, "v"], ...]}]``. A metric
template answers at most one series per color (stage 1 checks it), so a matrix of several series
is refused, never summed: summing quantiles would be a lie. NaN and infinite values (a quantile of
zero requests, a ratio of nothing) are dropped: "no data" is a gap, not a zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Points = tuple[tuple[float, float], ...]


def matrix_points(result: Sequence[dict[str, Any]], what: str) -> Points:
    """The one series of a range answer as (t, value) points; () when there is none."""
    if not result:
        return ()
    if len(result) > 1:
        raise ValueError(f"{what}: {len(result)} series in the range answer; a metric template must answer one")
    points = []
    for sample in result[0].get("values") or ():
        try:
            t, value = float(sample[0]), float(sample[1])
        except (TypeError, ValueError, IndexError) as error:
            raise ValueError(f"{what}: sample {sample!r:.80} is not [time, number]") from error
        if math.isfinite(value):
            points.append((t, value))
    return tuple(sorted(points))


def ratio_points(numerator: Points, denominator: Points) -> Points:
    """numerator / denominator at the instants both have, where the denominator is > 0. A missing
    numerator where the denominator has requests counts as 0 (no 5xx series yet: no 5xx)."""
    top = dict(numerator)
    return tuple((t, top.get(t, 0.0) / d) for t, d in denominator if d > 0)


def share_points(mine: Points, other: Points) -> Points:
    """mine / (mine + other) at every instant either color had requests."""
    a, b = dict(mine), dict(other)
    shares = []
    for t in sorted(set(a) | set(b)):
        total = a.get(t, 0.0) + b.get(t, 0.0)
        if total > 0:
            shares.append((t, a.get(t, 0.0) / total))
    return tuple(shares)


def range_step_seconds(duration_seconds: float, max_points: int = 720) -> int:
    """A query_range step that keeps a series under ``max_points`` points (1 s at least)."""
    if duration_seconds <= 0:
        return 1
    return max(1, math.ceil(duration_seconds / max_points))


def points_between(points: Points, start: float | None, end: float | None) -> Points:
    """The points with start <= t <= end (an open bound when None)."""
    return tuple((t, v) for t, v in points if (start is None or t >= start) and (end is None or t <= end))


#: The latency quantiles the report charts, by series measure.
REPORT_QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def range_queries(metrics: Any, window_seconds: int) -> list[tuple[str, str, str]]:
    """(what, color, PromQL) of every range query the report runs, from the plan's metric
    templates (cutover_kit.promql.MetricTemplates): requests and 5xx per window, and each latency
    quantile when the templates have a histogram. ``what`` is "requests", "errors" or p50/p95/p99."""
    queries = []
    for color in ("blue", "green"):
        queries.append(("requests", color, metrics.requests(color, window_seconds)))
        queries.append(("errors", color, metrics.errors(color, window_seconds)))
        for label, quantile in REPORT_QUANTILES.items():
            promql = metrics.latency_quantile(color, quantile, window_seconds)
            if promql is not None:
                queries.append((label, color, promql))
    return queries


def measure_series(answers: dict[tuple[str, str], Points]) -> list[tuple[str, str, Points]]:
    """(measure, color, points) for the report from the range answers by (what, color): traffic
    share and error ratio from the request and 5xx counts, latency as answered."""
    requests = {color: answers.get(("requests", color), ()) for color in ("blue", "green")}
    series = []
    for color, other in (("blue", "green"), ("green", "blue")):
        series.append(("traffic_share", color, share_points(requests[color], requests[other])))
        series.append(("error_ratio", color, ratio_points(answers.get(("errors", color), ()), requests[color])))
        for label in REPORT_QUANTILES:
            series.append((label, color, answers.get((label, color), ())))
    return [(measure, color, points) for measure, color, points in series if points]
