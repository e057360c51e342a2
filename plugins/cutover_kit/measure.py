"""Turn Prometheus answers into :class:`~cutover_kit.slo.ColorWindow` measurements.

Synchronous on purpose: the trigger runs it in a worker thread (``sync_to_async``), tasks call it
directly. "No data" stays ``None`` all the way to the judge.
"""

from __future__ import annotations

from typing import Protocol

from cutover_kit.promql import AppMetrics
from cutover_kit.slo import ColorWindow


class MetricsSource(Protocol):
    def query_optional(self, promql: str) -> float | None: ...


def measure_color(
    source: MetricsSource,
    color: str,
    window_seconds: int,
    quantiles: tuple[float, ...],
    metrics: AppMetrics = AppMetrics(),
) -> ColorWindow:
    up = source.query_optional(metrics.up(color))
    requests = source.query_optional(metrics.requests(color, window_seconds))
    errors = source.query_optional(metrics.errors(color, window_seconds)) if requests is not None else None
    latency = {
        quantile: source.query_optional(metrics.latency_quantile(color, quantile, window_seconds))
        for quantile in quantiles
    }
    return ColorWindow(
        color=color,
        requests=requests,
        errors=errors,
        latency_seconds=latency,
        up=None if up is None else up >= 1,
    )
