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

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
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
#: Queries in flight at once. Sequential, the list's ~16 queries cost ~70 ms here; Prometheus
#: answers them in parallel, so the poll waits for the slowest few instead of their sum.
PARALLEL_QUERIES = 8


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

    def judge(self, source: VectorSource, plan: CutoverPlan, green: ColorWindow, blue: ColorWindow,
              window_seconds: int, green_percent: float | None, slo: Judgement) -> tuple[Judgement, dict[str, Any]]:
        """Measure the list, judge the plan's whole-list limits and fold them into the SLO
        judge's judgement: (the poll's judgement, the event's ``whole_list``)."""
        reading = self.measure(source, green, blue, window_seconds, green_percent, plan.slo.quantiles[0])
        vitals = judge_vitals(reading.green, reading.blue, plan.slo, min_requests=plan.min_requests)
        return combine(slo, vitals, reading.apm_note()), reading.to_dict()

    def close(self) -> None:
        closer = getattr(self.statements, "__self__", None)
        if closer is not None and hasattr(closer, "close"):
            closer.close()

    def measure(self, source: VectorSource, green: ColorWindow, blue: ColorWindow, window_seconds: int,
                green_percent: float | None, route_quantile: float = 0.95) -> WholeListReading:
        problems: list[str] = []
        shares = {"green": None, "blue": None}
        if green_percent is not None:
            shares = {"green": green_percent / 100, "blue": 1 - green_percent / 100}
        windows = {"green": green, "blue": blue}
        # Every query of the poll at once (Prometheus and PostgreSQL both answer concurrently).
        with ThreadPoolExecutor(max_workers=PARALLEL_QUERIES, thread_name_prefix="whole-list") as pool:
            statements_job = pool.submit(self._statements, window_seconds, problems)
            routes_job = pool.submit(self._routes, source, route_quantile, window_seconds, pool)
            figures = {color: self._color_jobs(pool, source, windows[color], window_seconds) for color in COLORS}
            statements = statements_job.result()
            routes = routes_job.result()
            taken = {color: {name: job.result() for name, job in jobs.items()} for color, jobs in figures.items()}
        vitals = {color: self._color(windows[color], window_seconds, shares[color], statements, taken[color])
                  for color in COLORS}
        ranked_statements = []
        if statements["green"] is not None and statements["blue"] is not None:
            def ranked_means(totals: apm.StatementTotals) -> dict[str, float]:
                return apm.mean_ms({name: figures for name, figures in totals.items() if figures[0] >= MIN_STATEMENT_CALLS})
            ranked_statements = apm.rank(ranked_means(statements["green"]), ranked_means(statements["blue"]),
                                         STATEMENT_RANK_FLOOR_MS)
        return WholeListReading(vitals["green"], vitals["blue"], routes, ranked_statements, route_quantile, tuple(problems))

    def _color_jobs(self, pool: ThreadPoolExecutor, source: MetricsSource, window: ColorWindow,
                    window_seconds: int) -> dict[Any, Future]:
        """One future per figure of the color: the quantiles (those the judge did not measure
        already) and the scalar measures."""
        color, jobs = window.color, {}
        if self.metrics.latency_available:
            for quantile in REPORTED_QUANTILES:
                if quantile not in window.latency_seconds:
                    jobs[quantile] = pool.submit(self._take, source, color, f"{quantile_label(quantile)} latency",
                                                 self.metrics.latency_quantile(color, quantile, window_seconds))
        for measure in _SCALARS:
            jobs[measure] = pool.submit(self._take, source, color, measure.replace("_", " "),
                                        self.metrics.render(color, measure, window_seconds))
        return jobs

    def _take(self, source: MetricsSource, color: str, measure: str, promql: str | None) -> float | None:
        from cutover_kit.hooks.prometheus import PrometheusError  # not at import: DAG parsing stays light

        if promql is None:
            return None
        try:
            return source.query_optional(promql)
        except PrometheusError as error:
            raise MeasurementError(color, measure, error) from error

    def _color(self, window: ColorWindow, window_seconds: int, share: float | None,
               statements: Mapping[str, apm.StatementTotals | None], taken: Mapping[Any, float | None]) -> ColorVitals:
        color = window.color
        latency: dict[float, float | None] = {}
        if self.metrics.latency_available:
            latency = {quantile: window.latency_seconds[quantile] if quantile in window.latency_seconds else taken[quantile]
                       for quantile in REPORTED_QUANTILES}
        mean_ms, calls = (None, None)
        if statements.get(color) is not None:
            mean_ms, calls = apm.overall_mean_ms(statements[color])
        return ColorVitals(color=color, window_seconds=float(window_seconds), requests=window.requests,
                           traffic_share=share, latency_seconds=latency, db_statement_ms=mean_ms,
                           db_statement_calls=calls, **{measure: taken[measure] for measure in _SCALARS})

    def _routes(self, source: VectorSource, quantile: float, window_seconds: int,
                pool: ThreadPoolExecutor | None = None) -> list[apm.Slowdown]:
        queries = {color: self.metrics.route_latency_quantile(color, quantile, window_seconds) for color in COLORS}
        if any(promql is None for promql in queries.values()):
            return []
        if pool is None:
            per_color = {color: self._route_vector(source, color, promql) for color, promql in queries.items()}
        else:  # the green query runs beside this thread's blue one
            green = pool.submit(self._route_vector, source, "green", queries["green"])
            per_color = {"blue": self._route_vector(source, "blue", queries["blue"]), "green": green.result()}
        return apm.rank(per_color["green"], per_color["blue"], floor=ROUTE_RANK_FLOOR_SECONDS)

    def _route_vector(self, source: VectorSource, color: str, promql: str) -> dict[str, float]:
        from cutover_kit.hooks.prometheus import PrometheusError

        try:
            return _route_values(source.query(promql))
        except PrometheusError as error:
            raise MeasurementError(color, "route latency", error) from error

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


def _route_values(result: list[dict[str, Any]]) -> dict[str, float]:
    """{``GET /api/orders/{id}``: seconds} from a per-route quantile vector; NaN (no requests) left out."""
    values = {}
    for sample in result:
        labels = sample.get("metric", {})
        try:
            value = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if value == value and "route" in labels:  # NaN != NaN: a route without requests in the window
            values[apm.route_key(labels.get("method", ""), labels["route"])] = value
    return values


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
