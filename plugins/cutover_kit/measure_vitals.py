"""Measure the whole "monitor closely" list of both colors for one gate poll.

On top of what :func:`cutover_kit.measure.measure_color` took (requests, 5xx, the plan's latency
quantiles), each poll reads per color: p50/p95/p99, jobs processed and failed, open WebSockets,
resident memory and CPU of all the color's processes (the plan's metric templates), each route's
latency (APM), and the color's database statement time from pg_stat_statements under the role its
app connects as. Judging is elsewhere (cutover_kit.vitals, cutover_kit.apm).

No data stays ``None``. A Prometheus failure raises :class:`~cutover_kit.measure.MeasurementError`
(the poll is INCONCLUSIVE, as for the SLO measures); an unreadable statement view leaves the
statement figures ``None`` and says why in ``problems`` (a set limit on them is then INCONCLUSIVE).
Synchronous: the trigger runs it in a worker thread. One :class:`WholeListMeter` lives as long as
its gate, because statement time is the difference between its own readings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from cutover_kit import apm
from cutover_kit.measure import MeasurementError, MetricsSource
from cutover_kit.promql import COLORS, MetricTemplates
from cutover_kit.plan import CutoverPlan
from cutover_kit.slo import ColorWindow, Judgement, quantile_label
from cutover_kit.vitals import ColorVitals, combine, judge_vitals

#: Reported every poll whatever quantiles the plan judges.
REPORTED_QUANTILES = (0.5, 0.95, 0.99)
#: A statement class needs this many calls in the window on each color to be ranked.
MIN_STATEMENT_CALLS = 5
#: Below this mean on both colors a statement class is not ranked (sub-0.1 ms lookups are noise).
STATEMENT_RANK_FLOOR_MS = 0.1
#: Below this quantile on both colors a route is not ranked (1 ms vs 2 ms is scheduling noise).
ROUTE_RANK_FLOOR_SECONDS = 0.002
_SCALARS = ("jobs_processed", "jobs_failed", "websocket_connections", "memory_bytes", "cpu_cores", "forwarded_requests")
#: The figure under which the batched query tags each color's per-route latency vector.
ROUTES = "route_latency"
#: Labels the batched query tags each part's samples with (names no app metric uses).
COLOR_TAG, FIGURE_TAG = "cutover_color", "cutover_figure"


class VectorSource(MetricsSource, Protocol):
    def query(self, promql: str) -> list[dict[str, Any]]:
        """The raw result vector; raises a PrometheusError."""


StatementSource = Callable[[], Mapping[str, list[dict[str, Any]]]]


@dataclass(frozen=True)
class WholeListReading:
    green: ColorVitals
    blue: ColorVitals
    routes: list[apm.Slowdown] = field(default_factory=list)
    statements: list[apm.Slowdown] = field(default_factory=list)
    route_quantile: float = 0.95
    problems: tuple[str, ...] = ()

    @property
    def worst_route(self) -> apm.Slowdown | None:
        return apm.worst(self.routes)

    @property
    def worst_statement(self) -> apm.Slowdown | None:
        return apm.worst(self.statements)

    def apm_note(self) -> str | None:
        return apm.describe_worst(self.worst_route, self.worst_statement, quantile_label(self.route_quantile))

    def to_dict(self) -> dict[str, Any]:
        """The event's / XCom's ``whole_list``: both colors' figures, the APM ranking's head."""
        worst_route, worst_statement = self.worst_route, self.worst_statement
        return {
            "green": self.green.to_dict(),
            "blue": self.blue.to_dict(),
            "apm": {
                "route_quantile": self.route_quantile,
                "worst_route": None if worst_route is None else worst_route.to_dict(),
                "worst_statement": None if worst_statement is None else worst_statement.to_dict(),
                "routes": [slow.to_dict() for slow in self.routes[:5]],
                "statements": [slow.to_dict() for slow in self.statements[:5]],
            },
            "problems": list(self.problems),
        }


class WholeListMeter:
    """``roles``: {color: database role or None}; ``statements``: reads pg_stat_statements rows
    per role (None: no database to read, statement time is no data)."""

    def __init__(self, metrics: MetricTemplates, *, roles: Mapping[str, str | None] | None = None,
                 statements: StatementSource | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.roles = dict(roles or {})
        self.statements = statements
        self.clock = clock
        self._windows = {color: apm.StatementWindow() for color in COLORS}

    def judge(self, plan: CutoverPlan, reading: WholeListReading, slo: Judgement) -> Judgement:
        """The plan's whole-list limits judged on ``reading``, folded into the SLO judge's judgement
        (the APM note rides along)."""
        vitals = judge_vitals(reading.green, reading.blue, plan.slo, min_requests=plan.min_requests)
        return combine(slo, vitals, reading.apm_note())

    def close(self) -> None:
        closer = getattr(self.statements, "__self__", None)
        if closer is not None and hasattr(closer, "close"):
            closer.close()

    def alongside(self, measure_green: Callable[[], ColorWindow], measure_blue: Callable[[], ColorWindow],
                  source: VectorSource, window_seconds: int, green_percent: float | None,
                  judged_quantiles: tuple[float, ...] = (), route_quantile: float = 0.95,
                  ) -> tuple[ColorWindow, ColorWindow, WholeListReading]:
        """The SLO judge's measurements of both colors (``measure_green``/``measure_blue``, run as
        given) and the whole list's, at once: the two colors' SLO measures, one Prometheus query
        holding every whole-list template of both colors (:func:`batched_query`), and the
        statement view, each in its own thread. ``judged_quantiles`` are measured by the SLO
        callables already, not asked twice."""
        problems: list[str] = []
        shares: dict[str, float | None] = {"green": None, "blue": None}
        if green_percent is not None:
            shares = {"green": green_percent / 100, "blue": 1 - green_percent / 100}
        parts = self._parts(window_seconds, judged_quantiles, route_quantile)
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="gate-poll") as pool:
            slo_jobs = {"green": pool.submit(measure_green), "blue": pool.submit(measure_blue)}
            statements_job = pool.submit(self._statements, window_seconds, problems)
            taken_job = pool.submit(take_batch, source, parts)
            # The SLO measures' errors first: they name the measure that failed (green up, ...).
            windows = {color: job.result() for color, job in slo_jobs.items()}
            taken = taken_job.result()
            statements = statements_job.result()
        vitals = {color: self._color(windows[color], window_seconds, shares[color], statements, taken[color])
                  for color in COLORS}
        routes = {color: taken[color].get(ROUTES) for color in COLORS}
        ranked_routes = ([] if routes["green"] is None or routes["blue"] is None
                         else apm.rank(routes["green"], routes["blue"], floor=ROUTE_RANK_FLOOR_SECONDS))
        ranked_statements = []
        if statements["green"] is not None and statements["blue"] is not None:
            def ranked_means(totals: apm.StatementTotals) -> dict[str, float]:
                return apm.mean_ms({name: figures for name, figures in totals.items() if figures[0] >= MIN_STATEMENT_CALLS})
            ranked_statements = apm.rank(ranked_means(statements["green"]), ranked_means(statements["blue"]),
                                         STATEMENT_RANK_FLOOR_MS)
        reading = WholeListReading(vitals["green"], vitals["blue"], ranked_routes, ranked_statements, route_quantile,
                                   tuple(problems))
        return windows["green"], windows["blue"], reading

    def _parts(self, window_seconds: int, judged_quantiles: tuple[float, ...],
               route_quantile: float) -> dict[tuple[str, Any], str]:
        """{(color, figure): PromQL} of every whole-list template the set has (None ones left out):
        the reported quantiles the judge does not measure, the scalar measures, the route vector."""
        parts: dict[tuple[str, Any], str | None] = {}
        for color in COLORS:
            if self.metrics.latency_available:
                for quantile in REPORTED_QUANTILES:
                    if quantile not in judged_quantiles:
                        parts[color, quantile] = self.metrics.latency_quantile(color, quantile, window_seconds)
            for measure in _SCALARS:
                parts[color, measure] = self.metrics.render(color, measure, window_seconds)
            parts[color, ROUTES] = self.metrics.route_latency_quantile(color, route_quantile, window_seconds)
        return {key: promql for key, promql in parts.items() if promql is not None}

    def _color(self, window: ColorWindow, window_seconds: int, share: float | None,
               statements: Mapping[str, apm.StatementTotals | None], taken: Mapping[Any, Any]) -> ColorVitals:
        color = window.color
        latency: dict[float, float | None] = {}
        if self.metrics.latency_available:
            latency = {quantile: taken[quantile] if quantile in taken else window.latency_seconds.get(quantile)
                       for quantile in REPORTED_QUANTILES}
        mean_ms, calls = (None, None)
        if statements.get(color) is not None:
            mean_ms, calls = apm.overall_mean_ms(statements[color])
        return ColorVitals(color=color, window_seconds=float(window_seconds), requests=window.requests,
                           traffic_share=share, latency_seconds=latency, db_statement_ms=mean_ms,
                           db_statement_calls=calls, **{measure: taken.get(measure) for measure in _SCALARS})

    def _statements(self, window_seconds: int, problems: list[str]) -> dict[str, apm.StatementTotals | None]:
        """Per color, what its role ran over the window; None where that is not known (yet)."""
        found: dict[str, apm.StatementTotals | None] = {color: None for color in COLORS}
        if self.statements is None:
            return found
        missing = [color for color in COLORS if not self.roles.get(color)]
        if missing:
            problems.append(f"database statement time of {', '.join(missing)} unknown: its app Connection names "
                            f"no database_role")
        try:
            rows = self.statements()
        except Exception as error:  # noqa: BLE001 - any failure to read the view is "no data", said once
            problems.append(f"database statement time unavailable: {error}")
            return found
        now = self.clock()
        for color in COLORS:
            role = self.roles.get(color)
            if role:
                found[color] = self._windows[color].add(now, apm.totals_by_class(rows.get(role, [])), window_seconds)
        return found


def _tag(key: tuple[str, Any]) -> tuple[str, str]:
    color, figure = key
    return color, (quantile_label(figure) if isinstance(figure, float) else str(figure))


def batched_query(parts: Mapping[tuple[str, Any], str]) -> str:
    """One PromQL expression answering every part: each part's samples tagged with its color and
    figure (``label_replace`` with an empty source regex sets a constant label), joined with
    ``or`` (distinct tags, so no part's samples hide another's). One round trip and one
    evaluation instead of ~16: measured here, the poll's cost was its round trips."""
    tagged = []
    for key, promql in parts.items():
        color, figure = _tag(key)
        tagged.append(f'label_replace(label_replace(({promql}), "{COLOR_TAG}", "{color}", "", ""), '
                      f'"{FIGURE_TAG}", "{figure}", "", "")')
    return "\nor ".join(tagged)


def take_batch(source: VectorSource, parts: Mapping[tuple[str, Any], str]) -> dict[str, dict[Any, Any]]:
    """{color: {figure: float or None, ROUTES: {route: seconds}}} from one batched query. A part
    without samples (an absent metric, no requests: NaN) is None, never zero; a part answering
    several series raises MeasurementError naming it, like a one-number template would."""
    from cutover_kit.hooks.prometheus import PrometheusBadAnswer, PrometheusError

    taken: dict[str, dict[Any, Any]] = {color: {} for color in COLORS}
    if not parts:
        return taken
    promql = batched_query(parts)
    try:
        result = source.query(promql)
    except PrometheusError as error:
        # The hook quotes the query; this one is ~4 kB of every template: the reason names it instead.
        error.args = (str(error).replace(repr(promql), "the whole-list query"),)
        raise MeasurementError("both colors", "whole list", error) from error
    keys = {_tag(key): key for key in parts}
    for color, figure in parts:
        taken[color][figure] = {} if figure == ROUTES else None
    seen: set[tuple[str, Any]] = set()
    for sample in result:
        labels = dict(sample.get("metric", {}))
        key = keys.get((labels.pop(COLOR_TAG, None), labels.pop(FIGURE_TAG, None)))
        if key is None:
            continue
        color, figure = key
        value = _number(sample)
        if figure == ROUTES:
            if value is not None and "route" in labels:
                taken[color][ROUTES][apm.route_key(labels.get("method", ""), labels["route"])] = value
            continue
        if key in seen:
            name = f"{color}.{_tag(key)[1]}"
            raise MeasurementError(color, name, PrometheusBadAnswer(f"{name} answered several series; expected one "
                                                                    f"(aggregate it)"))
        seen.add(key)
        taken[color][figure] = value
    return taken


def _number(sample: Mapping[str, Any]) -> float | None:
    """The sample's value; None for NaN (a quantile without requests) or a non-number."""
    try:
        value = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def connected_meter(metrics: MetricTemplates, postgres_conn_id: str | None) -> WholeListMeter:
    """A meter reading statement time through the Connections (the shared database's, and each
    app's ``database_role``); without a database Connection, or when those cannot be read, a meter
    whose statement time is no data and whose readings say why."""
    if not postgres_conn_id:
        return WholeListMeter(metrics)
    try:
        from cutover_kit.hooks.postgres import app_statement_reader

        roles, reader = app_statement_reader(postgres_conn_id)
    except Exception as error:  # noqa: BLE001 - a missing Connection costs the statement figures, not the gate
        message = f"{type(error).__name__}: {error}"

        def unavailable() -> Mapping[str, list[dict[str, Any]]]:
            raise RuntimeError(f"the app database roles could not be read ({message})")
        return WholeListMeter(metrics, roles={color: f"unknown-{color}" for color in COLORS}, statements=unavailable)
    return WholeListMeter(metrics, roles=roles, statements=reader.read)
