"""Per-color metric templates: the PromQL the gate, stage 12's baseline and stage 1 run, per color.

Blue and green are different stacks that name their metrics differently (a Rails app exports
``http_server_requests_total{path}``, a Node app ``http_requests_total{route,status_code}``), so
a plan does not name metrics: it carries one template per measure and color, like Argo Rollouts'
AnalysisTemplate or Flagger's MetricTemplate. A template is PromQL with one placeholder,
``{window}`` (rendered as ``10s``), and the color's own selectors. Shipped sets live in
include/prometheus/templates/<name>.yaml; a plan selects one (``metric_templates: <name>``) or
writes its own (``metrics: {blue: ..., green: ...}``).

Measures (each template must answer with at most one series; stage 1 checks it on Prometheus):

- ``requests``, ``errors``: user requests and 5xx answers in the window (``increase``);
- ``latency_buckets``: the histogram's buckets rate, aggregated ``by (le)``; the judge wraps it in
  ``histogram_quantile(q, ...)`` for each quantile of the plan. ``null`` declares latency
  unavailable (the judge then skips latency and says so); both colors or neither;
- ``up``: 1 while the color's target answers scrapes;
- ``jobs_processed``, ``jobs_failed``: background jobs in the window; ``websocket_connections``:
  open WebSocket connections now. Optional (``null`` when the app exports nothing for them).
- ``memory_bytes``: resident memory of all the color's processes now (web and job workers);
  ``cpu_cores``: CPU seconds per second those processes used over the window; optional. One
  color's process model (Puma + Sidekiq) is not another's (one Node process running its BullMQ
  worker in-process), so only the color's total is comparable (docs/whole-list-gate.md).
- ``route_latency_buckets``: the request histogram's buckets rate aggregated ``by (le, method,
  route)`` (APM: the judge ranks routes by how much slower green is than blue); optional, and like
  ``latency_buckets`` both colors or neither. A stack labelling its route otherwise maps it onto
  ``route`` with ``label_replace``.
- ``forwarded_requests``: of this color's ``requests``, those it passed on to the other color
  (strangler pattern: green forwards Rails-flagged requests to blue, which counts them again);
  optional. The judge subtracts them from the other color's requests to get what the router
  sent each color, and from this color's to get what its own code served.

Pure: no Airflow, no I/O. Text checks here (placeholders, ``{window}`` where a range is needed);
whether Prometheus parses a template is stage 1's check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

COLORS = ("blue", "green")
WINDOW_PLACEHOLDER = "{window}"
#: Measures in check order; the first three are required, the others may be null.
REQUIRED_MEASURES = ("requests", "errors", "up")
OPTIONAL_MEASURES = ("latency_buckets", "jobs_processed", "jobs_failed", "websocket_connections",
                     "memory_bytes", "cpu_cores", "route_latency_buckets", "forwarded_requests")
MEASURES = REQUIRED_MEASURES + OPTIONAL_MEASURES
#: Counted over the judging window: without {window} they would not follow the plan's window.
WINDOWED_MEASURES = frozenset({"requests", "errors", "latency_buckets", "jobs_processed", "jobs_failed", "cpu_cores",
                               "route_latency_buckets", "forwarded_requests"})
#: Measures answered with one series per label set (not one number): stage 1 does not check them
#: for "at most one series", and the judge reads them as vectors.
VECTOR_MEASURES = frozenset({"route_latency_buckets"})
#: Labels a route_latency_buckets template must keep (besides `le`).
ROUTE_LABELS = ("method", "route")
# `{name}` with a bare identifier inside is a placeholder (a label matcher always has `=` or `~`).
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def template_problems(templates: Mapping[str, Any]) -> list[str]:
    """What is wrong with a schema-valid {color: {measure: template}} mapping, one line each,
    naming the template (``green.errors``)."""
    problems = []
    for color in COLORS:
        for measure in MEASURES:
            text = templates[color].get(measure)
            if text is None:
                continue
            name = f"{color}.{measure}"
            unknown = sorted({m.group(0) for m in _PLACEHOLDER.finditer(text)} - {WINDOW_PLACEHOLDER})
            if unknown:
                problems.append(f"metric template {name} has unknown placeholder(s) {', '.join(unknown)}; only {WINDOW_PLACEHOLDER} exists")
            if measure in WINDOWED_MEASURES and WINDOW_PLACEHOLDER not in text:
                problems.append(f"metric template {name} must count over {WINDOW_PLACEHOLDER} (e.g. [{WINDOW_PLACEHOLDER}])")
    for measure in ("latency_buckets", "route_latency_buckets"):
        latency = [color for color in COLORS if templates[color].get(measure) is not None]
        if len(latency) == 1:
            # The judge compares green with blue: one histogram alone cannot be compared.
            problems.append(f"metric template {measure} is set for {latency[0]} only; set it for both colors or neither")
    for color in COLORS:
        text = templates[color].get("route_latency_buckets")
        if text is not None and not all(re.search(rf"\b{label}\b", text) for label in ("le", *ROUTE_LABELS)):
            problems.append(f"metric template {color}.route_latency_buckets must aggregate by (le, method, route)")
    return problems


@dataclass(frozen=True)
class MetricTemplates:
    """Validated templates of both colors; ``name`` is the shipped set they came from (None: inline)."""

    templates: Mapping[str, Mapping[str, str | None]]
    name: str | None = None

    def __post_init__(self) -> None:
        missing = [f"{color}.{measure}" for color in COLORS for measure in REQUIRED_MEASURES
                   if not isinstance((self.templates.get(color) or {}).get(measure), str)]
        if missing:
            raise ValueError(f"metric templates {self.name or 'inline'}: missing {', '.join(missing)}")
        problems = template_problems(self.templates)
        if problems:
            raise ValueError(f"metric templates {self.name or 'inline'}: " + "; ".join(problems))
        frozen = {color: {measure: self.templates[color].get(measure) for measure in MEASURES} for color in COLORS}
        object.__setattr__(self, "templates", frozen)

    @property
    def latency_available(self) -> bool:
        return self.templates["blue"]["latency_buckets"] is not None

    def render(self, color: str, measure: str, window_seconds: int) -> str | None:
        """The template with its window filled in; None when the set declares the measure unavailable."""
        if color not in COLORS or measure not in MEASURES:
            raise KeyError(f"no metric template {color}.{measure}")
        text = self.templates[color][measure]
        return None if text is None else text.replace(WINDOW_PLACEHOLDER, f"{int(window_seconds)}s")

    def requests(self, color: str, window_seconds: int) -> str:
        return self.render(color, "requests", window_seconds)

    def errors(self, color: str, window_seconds: int) -> str:
        return self.render(color, "errors", window_seconds)

    def up(self, color: str) -> str:
        return self.render(color, "up", 0)

    def latency_quantile(self, color: str, quantile: float, window_seconds: int) -> str | None:
        buckets = self.render(color, "latency_buckets", window_seconds)
        return None if buckets is None else f"histogram_quantile({quantile}, {buckets})"

    def route_latency_quantile(self, color: str, quantile: float, window_seconds: int) -> str | None:
        """One series per (method, route): the quantile of each route's histogram; None when unavailable."""
        buckets = self.render(color, "route_latency_buckets", window_seconds)
        return None if buckets is None else f"histogram_quantile({quantile}, {buckets})"

    def checks(self, window_seconds: int, quantile: float) -> list[tuple[str, str]]:
        """(template name, PromQL) of every template set, as stage 1 runs them: each must answer
        with at most one series. The buckets answer one series per ``le``, so they are checked
        through the quantile the judge takes of them."""
        checks = []
        for color in COLORS:
            for measure in MEASURES:
                if measure in VECTOR_MEASURES:
                    continue
                promql = (self.latency_quantile(color, quantile, window_seconds) if measure == "latency_buckets"
                          else self.render(color, measure, window_seconds))
                if promql is not None:
                    checks.append((f"{color}.{measure}", promql))
        return checks

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        return {color: dict(self.templates[color]) for color in COLORS}
