"""Turn Prometheus answers into :class:`~cutover_kit.slo.ColorWindow` measurements.

Synchronous on purpose: the trigger runs it in a worker thread (``sync_to_async``), tasks call it
directly. "No data" stays ``None`` all the way to the judge; any other failure of a query
(Prometheus unavailable, a bad answer) becomes one :class:`MeasurementError` naming the color and
the measure, so a caller never has to know the source's own exception types. The queries come
from the plan's per-color metric templates (:class:`~cutover_kit.promql.MetricTemplates`).
"""

from __future__ import annotations

from typing import Protocol

from cutover_kit.promql import MetricTemplates
from cutover_kit.slo import ColorWindow, quantile_confidence_levels


class MetricsSource(Protocol):
    def query_optional(self, promql: str) -> float | None:
        """One float, None for no data; raises a PrometheusError for anything else."""


class MeasurementError(RuntimeError):
    """One measure of one color could not be taken; the message says which and why."""

    def __init__(self, color: str, measure: str, cause: Exception) -> None:
        self.color, self.measure, self.cause = color, measure, cause
        kind = getattr(cause, "kind", type(cause).__name__)
        super().__init__(f"{kind} measuring {color} {measure}: {cause}")


def measure_color(
    source: MetricsSource,
    color: str,
    window_seconds: int,
    quantiles: tuple[float, ...],
    metrics: MetricTemplates,
    confidence_z: float | None = None,
) -> ColorWindow:
    """One color's window. A template set without a latency histogram measures no quantile
    (``latency_seconds`` stays empty; the judge is told by ``metrics.latency_available``).

    With ``confidence_z``, each quantile also gets its confidence bounds: the same histogram read at
    the levels :func:`~cutover_kit.slo.quantile_confidence_levels` gives for this window's request
    count (two more queries per quantile; a bound with no data stays None and the judge falls back
    to the point value)."""
    def take(measure: str, promql: str) -> float | None:
        # Imported here, not at module level: the DAG files import this module through the gate
        # operator, and parsing must not pull in requests and the hook.
        from cutover_kit.hooks.prometheus import PrometheusError

        try:
            return source.query_optional(promql)
        except PrometheusError as error:
            raise MeasurementError(color, measure, error) from error

    up = take("up", metrics.up(color))
    requests = take("requests", metrics.requests(color, window_seconds))
    errors = take("5xx", metrics.errors(color, window_seconds)) if requests is not None else None
    latency = {
        quantile: take(f"p{quantile * 100:g} latency", metrics.latency_quantile(color, quantile, window_seconds))
        for quantile in quantiles
    } if metrics.latency_available else {}
    bounds: dict[float, tuple[float | None, float | None]] = {}
    if confidence_z is not None and requests and metrics.latency_available:
        for quantile, point in latency.items():
            if point is None:
                continue
            low_level, high_level = quantile_confidence_levels(quantile, requests, confidence_z)
            label = f"p{quantile * 100:g}"
            bounds[quantile] = (
                take(f"{label} lower bound", metrics.latency_quantile(color, low_level, window_seconds)),
                take(f"{label} upper bound", metrics.latency_quantile(color, high_level, window_seconds)),
            )
    return ColorWindow(
        color=color,
        requests=requests,
        errors=errors,
        latency_seconds=latency,
        up=None if up is None else up >= 1,
        latency_bounds=bounds,
    )
