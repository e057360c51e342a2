"""Benchmark: how often the real SLO gate is right, by Monte-Carlo on synthetic traffic.

    python -m benchmarks.gate_quality [--trials N] [--quick] [--seed 14] [--json benchmarks/gate_quality.json]

It drives the project's own judge and gate, imported, never copied: the plans come from the plan
loader (include/plans/default.yaml and rehearsal.yaml), every ColorWindow is built by
``cutover_kit.measure.measure_color`` from answers to the exact PromQL the plan's templates render,
then ``slo.judge_window`` and ``gate.advance_gate`` decide, poll after poll, the way
``triggers/slo_gate.py`` loops. Only Prometheus and the traffic are synthetic:

- Traffic, per second and per color: Poisson arrivals at ``rate x share`` (green) and
  ``rate x (1 - share)`` (blue), binomial 5xx, lognormal latencies (median 50 ms, sigma 0.6 by
  default: p95 134 ms, p99 202 ms, above both plans' latency floors so the latency rule is really
  exercised) counted into the buckets the sandbox apps export (blue: Rails'
  ``Cutover::Metrics::LATENCY_BUCKETS``; green: TypeScript's ``LATENCY_BUCKETS``; ``--buckets
  prometheus-client`` uses prometheus-client's defaults for both instead).
- Prometheus: a 1 s scrape of each cumulative counter (one series per measure, counters already
  past zero from earlier traffic), ``increase()``/``rate()`` computed exactly like Prometheus 2.x's
  ``extrapolatedRate`` (closed range ``[t - w, t]``, extrapolation to the range edges within 1.1
  sample intervals, the counter's zero point capping it), ``histogram_quantile`` exactly like its
  ``bucketQuantile`` (monotonic fix, linear interpolation inside the bucket, the +Inf bucket rule:
  a rank in +Inf answers the highest finite bound; no observations: NaN, which the hook turns into
  "no data"). Scrapes fall on whole seconds; polls fall a random fraction of a second after them.
- The gate: the sensor starts it as the weights are set; it polls every ``poll_interval_seconds``
  over ``gate.judging_window_seconds`` (so the first windows are short), the blue baseline is a
  ``measure_color`` of blue alone over ``baseline_seconds`` before the step, judged by
  ``summarize_baseline`` as stage 12 does. A trial is one traffic step; it ends at the gate's
  decision (promote, halt, or timeout at the step timeout).
- Faults (errors or latency on green) start with the step: a bad build is bad from its first
  request (``--onset-seconds`` moves the onset later). Blue has no 5xx in these scenarios, and the
  latency scenarios none on either color, so each scenario measures one rule.

Side by side, on the same streams, two other tools' default analyses, emulated from their
documentation and source:

- Flagger (docs/gitbook/usage/metrics.md "Builtin metrics"; pkg/controller/scheduler.go and
  scheduler_metrics.go in fluxcd/flagger): every ``interval: 1m`` it runs the builtin checks
  ``request-success-rate`` (non-5xx share of the last 1 m, ``thresholdRange.min: 99``) and
  ``request-duration`` (p99 of the last 1 m, ``thresholdRange.max: 500`` ms); a query with no
  values ("no values found", e.g. no canary traffic) fails the check. A failed check increments
  ``FailedChecks`` and holds the weight; a passing one advances the weight (the step promotes);
  the tick that finds ``FailedChecks >= threshold`` (5) rolls back. So a persistent fault halts at
  the 6th tick, 6 minutes. FailedChecks is never reset between steps in Flagger; here every step
  starts from 0, which is kind to Flagger.
- Argo Rollouts (docs/features/analysis.md; AnalysisTemplate fields ``interval``,
  ``failureLimit``, default 0): a background analysis measuring the success rate over the last
  1 m every ``interval: 1m`` with ``successCondition: result[0] >= 0.99``, ``failureLimit: 0``, so
  the first failed measurement aborts the rollout. 0/0 (no canary requests) reads NaN, which fails
  the condition. The step is a ``pause`` of the plan's bake, but at least one interval (else Argo
  would measure nothing), and the first measurement comes one interval after the weight change
  (an ``initialDelay: 1m``, as the docs advise, so it never measures the previous step). Argo's
  default template has no latency metric: a latency fault promotes unless errors show.

Outputs per plan (default, rehearsal) over green share (5, 25, 50, 100 %) x total rate (20, 40,
200, 1000 req/s): false halts at equal error rates (0, 0.1, 0.5 %; 0 % is also the latency x1.0
case) and at latency x1.3; misses at 2, 3, 5, 20 % green errors and at 2x green latency; timeouts;
median and p95 time from fault onset to the halt. Every rate carries its trial count and a 95 %
Wilson interval in the JSON. Seeded and deterministic: each cell draws from its own seed (plan,
scenario, share, rate), so a cell's figures do not depend on which other cells ran.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import inspect
import json
import math
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from benchmarks import REPO_ROOT  # also puts the project on the path

from cutover_kit import slo  # noqa: E402
from cutover_kit.gate import GateDecision, GateProgress, advance_gate, initial_credit_start, judging_window_seconds  # noqa: E402
from cutover_kit.measure import measure_color  # noqa: E402
from cutover_kit.plan import CutoverPlan, load_plan  # noqa: E402
from cutover_kit.slo import ColorWindow, Verdict, judge_window, summarize_baseline  # noqa: E402

INF = math.inf
#: sandbox/apps/rails/lib/cutover/metrics.rb LATENCY_BUCKETS (blue), also sandbox/app.py's.
RAILS_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
                         0.3, 0.5, 0.75, 1, 2, 5)
#: sandbox/apps/typescript/src/metrics.ts LATENCY_BUCKETS (green).
TYPESCRIPT_LATENCY_BUCKETS = RAILS_LATENCY_BUCKETS + (10, 30)
#: prometheus_client.Histogram.DEFAULT_BUCKETS (without +Inf, which every histogram has).
PROMETHEUS_CLIENT_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
BUCKET_SETS = {
    "apps": {"blue": RAILS_LATENCY_BUCKETS, "green": TYPESCRIPT_LATENCY_BUCKETS},
    "prometheus-client": {"blue": PROMETHEUS_CLIENT_DEFAULT_BUCKETS, "green": PROMETHEUS_CLIENT_DEFAULT_BUCKETS},
}

SHARES = (5, 25, 50, 100)
RATES = (20, 40, 200, 1000)
PLANS = ("default", "rehearsal")
LATENCY_MEDIAN_SECONDS = 0.050
LATENCY_SIGMA = 0.6
#: Seconds of counter history before the step: every counter is already past zero, as in a
#: running app, so Prometheus' zero-point cap only bites where a counter really is still 0.
HISTORY_SECONDS = 600

FLAGGER_INTERVAL_SECONDS = 60
FLAGGER_THRESHOLD = 5
FLAGGER_MIN_SUCCESS_PERCENT = 99.0
FLAGGER_MAX_P99_MS = 500.0
ARGO_INTERVAL_SECONDS = 60
ARGO_FAILURE_LIMIT = 0
ARGO_MIN_SUCCESS_RATIO = 0.99
#: Flagger needs 6 ticks to roll back a persistent fault: streams last at least that long.
FLAGGER_HORIZON_SECONDS = FLAGGER_INTERVAL_SECONDS * (FLAGGER_THRESHOLD + 1)

PROMOTE, HALT, TIMEOUT = "promote", "halt", "timeout"


# --- Prometheus, emulated ------------------------------------------------------------------------

def extrapolated_increase(
    first_value: float, last_value: float, first_t: float, last_t: float, samples: int,
    range_start: float, range_end: float,
) -> float | None:
    """Prometheus 2.x ``increase()`` of one counter series with no reset in the range
    (promql/functions.go extrapolatedRate, isCounter, not isRate): None below two samples."""
    if samples < 2:
        return None
    result = last_value - first_value
    duration_to_start = first_t - range_start
    duration_to_end = range_end - last_t
    sampled = last_t - first_t
    average = sampled / (samples - 1)
    if result > 0 and first_value >= 0:
        # A counter cannot go below zero: extrapolate no further back than its zero point.
        duration_to_start = min(duration_to_start, sampled * (first_value / result))
    threshold = average * 1.1
    interval = sampled
    interval += duration_to_start if duration_to_start < threshold else average / 2
    interval += duration_to_end if duration_to_end < threshold else average / 2
    return result * (interval / sampled)


def scrape_span(t: float, window: float) -> tuple[int, int]:
    """Indices (whole seconds) of the first and last 1 s scrape inside ``[t - window, t]``."""
    return math.ceil(t - window - 1e-9), math.floor(t + 1e-9)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus 2.x ``histogram_quantile`` (promql/quantile.go bucketQuantile) of one histogram:
    ``buckets`` are (upper bound, cumulative count) pairs, +Inf included; NaN when undefined."""
    return prepared_quantile(q, prepare_histogram(buckets))


def prepare_histogram(buckets: Sequence[tuple[float, float]]) -> list[list[float]] | None:
    """bucketQuantile's preparation, done once per histogram: sorted by bound, equal bounds added
    up, counts made monotonic; None when no quantile is defined (no +Inf bucket, one bucket)."""
    ordered = sorted(buckets, key=lambda bucket: bucket[0])
    if not ordered or ordered[-1][0] != INF:
        return None
    coalesced: list[list[float]] = []
    for upper, count in ordered:  # same le twice: Prometheus adds them up
        if coalesced and coalesced[-1][0] == upper:
            coalesced[-1][1] += count
        else:
            coalesced.append([upper, count])
    running = -INF
    for bucket in coalesced:  # ensureMonotonic: a lower count than the bucket below is raised to it
        running = max(running, bucket[1])
        bucket[1] = running
    return coalesced if len(coalesced) >= 2 else None


def prepared_quantile(q: float, coalesced: list[list[float]] | None) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -INF
    if q > 1:
        return INF
    if coalesced is None:
        return math.nan
    observations = coalesced[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(coalesced) - 1) if coalesced[i][1] >= rank), len(coalesced) - 1)
    if b == len(coalesced) - 1:
        return coalesced[-2][0]  # the rank falls in +Inf: answer the highest finite bound
    if b == 0 and coalesced[0][0] <= 0:
        return coalesced[0][0]
    start, end, count = 0.0, coalesced[b][0], coalesced[b][1]
    if b > 0:
        start = coalesced[b - 1][0]
        count -= coalesced[b - 1][1]
        rank -= coalesced[b - 1][1]
    return start + (end - start) * (rank / count)


# --- synthetic traffic ---------------------------------------------------------------------------

@dataclass
class ColorStream:
    """One color's cumulative counters at each whole second ``s`` (index ``s + pre``): what a 1 s
    scrape at that second reads. ``buckets`` holds the cumulative ``le`` counters, +Inf last."""

    bounds: tuple[float, ...]
    requests: np.ndarray
    errors: np.ndarray
    buckets: np.ndarray
    pre: int

    def at(self, second: int) -> int:
        return second + self.pre

    def increase(self, counter: np.ndarray, t: float, window: float) -> float | None:
        first, last = scrape_span(t, window)
        return extrapolated_increase(float(counter[self.at(first)]), float(counter[self.at(last)]), first, last,
                                     last - first + 1, t - window, t)

    def bucket_increases(self, t: float, window: float) -> list[float] | None:
        """``increase()`` of every ``le`` series (rate() differs by a constant the quantile ignores)."""
        first, last = scrape_span(t, window)
        if last - first < 1:
            return None
        firsts = self.buckets[self.at(first)]
        lasts = self.buckets[self.at(last)]
        return [extrapolated_increase(float(a), float(b), first, last, last - first + 1, t - window, t)
                for a, b in zip(firsts, lasts)]


def synthesize_color(
    rng: np.random.Generator, *, rate: float, seconds: int, pre: int, error_before: float, error_after: float,
    latency_median: float, latency_ratio_after: float, onset: int, bounds: tuple[float, ...],
    pre_rate: float = 0.0,
) -> ColorStream:
    """Per-second Poisson arrivals, binomial 5xx, lognormal latency in ``bounds``, as cumulative
    counters. Seconds before 0 (``pre`` of them) carry ``pre_rate`` (the traffic before the weight
    change); the fault (``error_after``, ``latency_ratio_after``) starts at second ``onset``."""
    total = pre + seconds
    times = np.arange(total) - pre
    lam = np.where(times < 0, pre_rate, rate)
    arrivals = rng.poisson(lam)
    faulty = times >= onset
    error_p = np.where(faulty, error_after, error_before)
    errors = rng.binomial(arrivals, error_p)
    edges = np.log(np.asarray(bounds, dtype=float))

    def bucket_probabilities(median: float) -> np.ndarray:
        from math import erf, sqrt

        cdf = np.array([0.5 * (1 + erf((edge - math.log(median)) / (LATENCY_SIGMA * sqrt(2)))) for edge in edges])
        return np.diff(np.concatenate(([0.0], cdf, [1.0])))

    healthy_p = bucket_probabilities(latency_median)
    fault_p = bucket_probabilities(latency_median * latency_ratio_after)
    per_bucket = np.empty((total, len(bounds) + 1), dtype=np.int64)
    if onset > times[0]:
        before = ~faulty
        per_bucket[before] = rng.multinomial(arrivals[before], healthy_p)
    per_bucket[faulty] = rng.multinomial(arrivals[faulty], fault_p)
    history = HISTORY_SECONDS * max(rate, pre_rate)
    start_requests = round(history)
    start_errors = round(history * error_before)
    start_buckets = np.round(history * np.cumsum(healthy_p))
    # Index i holds the counter value a scrape at second (i - pre) reads: everything before it.
    requests = start_requests + np.concatenate(([0], np.cumsum(arrivals)))
    error_counter = start_errors + np.concatenate(([0], np.cumsum(errors)))
    cumulative_le = np.cumsum(per_bucket, axis=1)
    bucket_counter = start_buckets + np.vstack((np.zeros(len(bounds) + 1), np.cumsum(cumulative_le, axis=0)))
    return ColorStream(tuple(bounds) + (INF,), requests, error_counter, bucket_counter, pre)


# --- the PromQL the plan renders, answered from the streams --------------------------------------

_QUANTILE_QUERY = re.compile(r"^histogram_quantile\(([^,]+), (.*)\)$", re.DOTALL)


class SyntheticPrometheus:
    """Answers the plan's rendered templates (``query_optional``, the MetricsSource protocol) at
    evaluation time ``t``; any query the templates did not render is an error, so a change in
    measure.py's queries cannot pass unnoticed."""

    def __init__(self, plan: CutoverPlan, streams: dict[str, ColorStream]) -> None:
        self.plan, self.streams = plan, streams
        self.t = 0.0
        self._known: dict[str, tuple[str, str, int]] = {}
        self._windows_known: set[int] = set()
        self._cache: dict[tuple[str, str, int], Any] = {}
        for window in range(1, max(plan.window_seconds, plan.baseline_seconds) + 1):
            self._learn(window)

    def at(self, t: float) -> SyntheticPrometheus:
        self.t = t
        self._cache.clear()
        return self

    def _learn(self, window: int) -> None:
        """Every query the plan's templates render for this window, and what each one measures."""
        metrics = self.plan.metrics
        for color in ("blue", "green"):
            self._known[metrics.up(color)] = (color, "up", window)
            self._known[metrics.requests(color, window)] = (color, "requests", window)
            self._known[metrics.errors(color, window)] = (color, "errors", window)
            buckets = metrics.render(color, "latency_buckets", window)
            if buckets is not None:
                self._known[buckets] = (color, "buckets", window)
        self._windows_known.add(window)

    def _lookup(self, promql: str) -> tuple[str, str, int]:
        found = self._known.get(promql)
        if found is None:
            window = re.search(r"\[(\d+)s\]", promql)
            if window and int(window.group(1)) not in self._windows_known:
                self._learn(int(window.group(1)))
                found = self._known.get(promql)
        if found is None:
            raise ValueError(f"the synthetic Prometheus does not know the query {promql!r}")
        return found

    def measure(self, color: str, measure: str, window: int) -> Any:
        key = (color, measure, window)
        if key not in self._cache:
            stream = self.streams[color]
            if measure == "up":
                value: Any = 1.0
            elif measure == "requests":
                value = stream.increase(stream.requests, self.t, window)
            elif measure == "errors":
                value = stream.increase(stream.errors, self.t, window)
            else:
                increases = stream.bucket_increases(self.t, window)
                value = None if increases is None else prepare_histogram(list(zip(stream.bounds, increases)))
            self._cache[key] = value
        return self._cache[key]

    def query_optional(self, promql: str) -> float | None:
        match = _QUANTILE_QUERY.match(promql)
        if match:
            color, measure, window = self._lookup(match.group(2))
            if measure != "buckets":
                raise ValueError(f"histogram_quantile over something that is not a histogram: {promql!r}")
            value = prepared_quantile(float(match.group(1)), self.measure(color, "buckets", window))
        else:
            value = self.measure(*self._lookup(promql))
        return None if value is None or math.isnan(value) else float(value)


@functools.lru_cache(maxsize=None)
def _takes_confidence_z(measure) -> bool:
    return "confidence_z" in inspect.signature(measure).parameters


def measure_windows(source: SyntheticPrometheus, plan: CutoverPlan, window: int, colors: Sequence[str] = ("green", "blue"),
                    ) -> list[ColorWindow]:
    """The one place ColorWindows are built: measure.measure_color, called as the trigger calls it
    (with the plan's ``confidence_z`` where measure_color takes one, so it reads each quantile's
    confidence bounds itself). Should slo.py judge quantiles with confidence bounds
    (``quantile_confidence_levels``) while measure_color cannot read them, the bounds are read
    here the way the judge defines them: histogram_quantile of the same buckets at the lower and
    upper levels."""
    quantiles, z = tuple(plan.slo.quantiles), plan.slo.confidence_z
    if _takes_confidence_z(measure_color):
        return [measure_color(source, color, window, quantiles, plan.metrics, z) for color in colors]
    windows = [measure_color(source, color, window, quantiles, plan.metrics) for color in colors]
    levels = getattr(slo, "quantile_confidence_levels", None)
    if levels is None or not plan.metrics.latency_available:
        return windows
    filled = []
    for color_window in windows:
        if not hasattr(color_window, "latency_bounds") or not color_window.requests:
            filled.append(color_window)
            continue
        bounds = {}
        for quantile, point in color_window.latency_seconds.items():
            if point is None:
                continue
            low_level, high_level = levels(quantile, color_window.requests, z)
            bounds[quantile] = tuple(source.query_optional(plan.metrics.latency_quantile(color_window.color, level, window))
                                     for level in (low_level, high_level))
        filled.append(dataclasses.replace(color_window, latency_bounds=bounds))
    return filled


# --- one traffic step ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    name: str
    family: str  # "false_halt" (healthy green) or "miss" (faulty green)
    green_error: float
    blue_error: float = 0.0
    latency_ratio: float = 1.0

    @property
    def faulty(self) -> bool:
        return self.family == "miss"


SCENARIOS = (
    Scenario("errors 0 % (= latency x1.0)", "false_halt", 0.0, 0.0),
    Scenario("errors 0.1 % both", "false_halt", 0.001, 0.001),
    Scenario("errors 0.5 % both", "false_halt", 0.005, 0.005),
    Scenario("latency x1.3", "false_halt", 0.0, 0.0, 1.3),
    Scenario("errors 2 %", "miss", 0.02),
    Scenario("errors 3 %", "miss", 0.03),
    Scenario("errors 5 %", "miss", 0.05),
    Scenario("errors 20 %", "miss", 0.20),
    Scenario("latency x2", "miss", 0.0, 0.0, 2.0),
)


@dataclass(frozen=True)
class Outcome:
    decision: str  # promote / halt / timeout
    seconds: float  # step time of the decision
    reason: str = dataclasses.field(default="", compare=False)  # the gate's last judgement, for --explain


def step_seconds(plan: CutoverPlan) -> int:
    return max(plan.step_timeout_seconds, FLAGGER_HORIZON_SECONDS, max(plan.bake_seconds, ARGO_INTERVAL_SECONDS)) + 2


def synthesize_step(rng: np.random.Generator, plan: CutoverPlan, scenario: Scenario, share: int, rate: float,
                    onset: int, bucket_set: str) -> dict[str, ColorStream]:
    seconds, pre = step_seconds(plan), plan.window_seconds + 2
    green_rate, blue_rate = rate * share / 100, rate * (100 - share) / 100
    bounds = BUCKET_SETS[bucket_set]
    green_before = scenario.blue_error if scenario.faulty else scenario.green_error
    return {
        "green": synthesize_color(rng, rate=green_rate, seconds=seconds, pre=pre, error_before=green_before,
                                  error_after=scenario.green_error, latency_median=LATENCY_MEDIAN_SECONDS,
                                  latency_ratio_after=scenario.latency_ratio, onset=onset, bounds=bounds["green"]),
        "blue": synthesize_color(rng, rate=blue_rate, seconds=seconds, pre=pre, error_before=scenario.blue_error,
                                 error_after=scenario.blue_error, latency_median=LATENCY_MEDIAN_SECONDS,
                                 latency_ratio_after=1.0, onset=0, bounds=bounds["blue"], pre_rate=rate),
    }


def blue_baseline(rng: np.random.Generator, plan: CutoverPlan, scenario: Scenario, rate: float, bucket_set: str,
                  phase: float) -> ColorWindow | None:
    """Stage 12's baseline: blue alone at the full rate, measured over baseline_seconds; None when
    summarize_baseline would not PASS it (the stage would retry; the gate then has no baseline)."""
    stream = synthesize_color(rng, rate=rate, seconds=plan.baseline_seconds + 2, pre=1, error_before=scenario.blue_error,
                              error_after=scenario.blue_error, latency_median=LATENCY_MEDIAN_SECONDS,
                              latency_ratio_after=1.0, onset=0, bounds=BUCKET_SETS[bucket_set]["blue"])
    source = SyntheticPrometheus(plan, {"blue": stream}).at(plan.baseline_seconds + phase)
    (blue,) = measure_windows(source, plan, plan.baseline_seconds, colors=("blue",))
    judgement = summarize_baseline(blue, min_requests=plan.min_requests, window_seconds=plan.baseline_seconds)
    return blue if judgement.verdict is Verdict.PASS else None


def run_gate(plan: CutoverPlan, streams: dict[str, ColorStream], baseline: ColorWindow | None, phase: float) -> Outcome:
    """The trigger's loop (triggers/slo_gate.py _watch) in step time: the gate starts as the
    weights are set, its first poll a fraction of a second later, then every poll interval."""
    source = SyntheticPrometheus(plan, streams)
    progress = GateProgress(last_elapsed_seconds=initial_credit_start(0.0, plan.window_seconds))
    elapsed = phase
    while True:
        window = judging_window_seconds(elapsed, plan.window_seconds)
        green, blue = measure_windows(source.at(elapsed), plan, window)
        judgement = judge_window(green, blue, plan.slo, min_requests=plan.min_requests, window_seconds=window,
                                 blue_baseline=baseline, judge_latency=plan.metrics.latency_available)
        progress, decision = advance_gate(progress, judgement, elapsed, bake_seconds=plan.bake_seconds,
                                          step_timeout_seconds=plan.step_timeout_seconds,
                                          consecutive_breach_limit=plan.consecutive_breaches)
        if decision is GateDecision.PROMOTE:
            return Outcome(PROMOTE, elapsed, judgement.reason)
        if decision is GateDecision.HALT:
            return Outcome(HALT, elapsed, judgement.reason)
        if decision is GateDecision.TIMEOUT:
            return Outcome(TIMEOUT, elapsed, judgement.reason)
        elapsed += plan.poll_interval_seconds


def success_ratio(stream: ColorStream, t: float, window: float) -> float:
    """sum(rate(non-5xx)) / sum(rate(all)) over the window; NaN for 0/0 (no canary traffic)."""
    requests = stream.increase(stream.requests, t, window) or 0.0
    errors = stream.increase(stream.errors, t, window) or 0.0
    if requests <= 0:
        return math.nan
    return (requests - errors) / requests


def flagger_check(stream: ColorStream, t: float) -> bool:
    """Flagger's builtin request-success-rate (min 99 %) and request-duration (p99 max 500 ms) over
    1 m; "no values" (NaN, nothing) fails the check."""
    ratio = success_ratio(stream, t, FLAGGER_INTERVAL_SECONDS)
    if math.isnan(ratio) or ratio * 100 < FLAGGER_MIN_SUCCESS_PERCENT:
        return False
    buckets = stream.bucket_increases(t, FLAGGER_INTERVAL_SECONDS)
    p99 = math.nan if buckets is None else histogram_quantile(0.99, list(zip(stream.bounds, buckets)))
    return not (math.isnan(p99) or p99 * 1000 > FLAGGER_MAX_P99_MS)


def run_flagger(checks: Iterable[bool], phase: float = 0.0) -> Outcome:
    """Flagger's scheduler per tick: rollback when FailedChecks reached the threshold, else run the
    analysis: a failure counts and holds the weight, a pass advances it (the step promotes)."""
    failed = 0
    for tick, passed in enumerate(checks, start=1):
        t = tick * FLAGGER_INTERVAL_SECONDS + phase
        if failed >= FLAGGER_THRESHOLD:
            return Outcome(HALT, t)
        if passed:
            return Outcome(PROMOTE, t)
        failed += 1
    raise ValueError("the stream ended before Flagger decided")


def run_argo(measurements: Iterable[bool], count: int, phase: float = 0.0) -> Outcome:
    """Argo's background analysis with failureLimit 0: the first failed measurement aborts; the
    step's pause ends (promotes) after ``count`` measurements."""
    failed = 0
    for index, passed in enumerate(measurements, start=1):
        t = index * ARGO_INTERVAL_SECONDS + phase
        failed += not passed
        if failed > ARGO_FAILURE_LIMIT:
            return Outcome(HALT, t)
        if index >= count:
            return Outcome(PROMOTE, max(t, 0.0))
    raise ValueError("the stream ended before Argo decided")


def argo_measurement(stream: ColorStream, t: float) -> bool:
    ratio = success_ratio(stream, t, ARGO_INTERVAL_SECONDS)
    return not math.isnan(ratio) and ratio >= ARGO_MIN_SUCCESS_RATIO


def argo_count(plan: CutoverPlan) -> int:
    return max(1, math.ceil(plan.bake_seconds / ARGO_INTERVAL_SECONDS))


def run_trial(rng: np.random.Generator, plan: CutoverPlan, scenario: Scenario, share: int, rate: float, onset: int,
              bucket_set: str) -> dict[str, Outcome]:
    phase = float(rng.uniform(0.01, 0.99))
    streams = synthesize_step(rng, plan, scenario, share, rate, onset, bucket_set)
    baseline = blue_baseline(rng, plan, scenario, rate, bucket_set, phase)
    green = streams["green"]
    flagger = run_flagger((flagger_check(green, tick * FLAGGER_INTERVAL_SECONDS + phase)
                           for tick in range(1, FLAGGER_THRESHOLD + 2)), phase)
    argo = run_argo((argo_measurement(green, index * ARGO_INTERVAL_SECONDS + phase)
                     for index in range(1, argo_count(plan) + 1)), argo_count(plan), phase)
    return {"gate": run_gate(plan, streams, baseline, phase), "flagger": flagger, "argo": argo}


# --- statistics and the cells --------------------------------------------------------------------

def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (no continuity correction)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)  # nearest rank
    return ordered[index]


def summarize(outcomes: list[Outcome], scenario: Scenario, onset: int) -> dict[str, Any]:
    n = len(outcomes)
    counts = {decision: sum(o.decision == decision for o in outcomes) for decision in (PROMOTE, HALT, TIMEOUT)}
    wrong = counts[HALT] if not scenario.faulty else counts[PROMOTE]
    halt_times = [o.seconds - onset for o in outcomes if o.decision == HALT]
    low, high = wilson(wrong, n)
    return {
        "trials": n,
        "promoted": counts[PROMOTE], "halted": counts[HALT], "timed_out": counts[TIMEOUT],
        "wrong": wrong, "wrong_rate": wrong / n if n else None, "wrong_rate_wilson95": [round(low, 4), round(high, 4)],
        "timeout_rate": counts[TIMEOUT] / n if n else None,
        "halt_seconds_median": None if not halt_times else round(statistics.median(halt_times), 2),
        "halt_seconds_p95": None if not halt_times else round(percentile(halt_times, 0.95), 2),
    }


def cell_seed(seed: int, plan: str, scenario: str, share: int, rate: float, bucket_set: str) -> np.random.SeedSequence:
    digest = hashlib.sha256(f"{seed}|{plan}|{scenario}|{share}|{rate:g}|{bucket_set}".encode()).digest()
    return np.random.SeedSequence(int.from_bytes(digest[:16], "big"))


def run_cell(plan: CutoverPlan, scenario: Scenario, share: int, rate: float, trials: int, seed: int, onset: int,
             bucket_set: str) -> dict[str, Any]:
    rng = np.random.default_rng(cell_seed(seed, plan.name, scenario.name, share, rate, bucket_set))
    results: dict[str, list[Outcome]] = {"gate": [], "flagger": [], "argo": []}
    for _ in range(trials):
        for tool, outcome in run_trial(rng, plan, scenario, share, rate, onset, bucket_set).items():
            results[tool].append(outcome)
    return {"plan": plan.name, "scenario": scenario.name, "family": scenario.family, "share": share, "rate": rate,
            **{tool: summarize(outcomes, scenario, onset) for tool, outcomes in results.items()}}


def explain_cell(plan: CutoverPlan, scenario: Scenario, share: int, rate: float, trials: int, seed: int, onset: int,
                 bucket_set: str) -> list[str]:
    """The gate's wrong decisions in one cell (same seed, same trials as the run), with the
    judgement that made each: the failing cases behind a figure."""
    rng = np.random.default_rng(cell_seed(seed, plan.name, scenario.name, share, rate, bucket_set))
    lines = []
    for index in range(trials):
        outcome = run_trial(rng, plan, scenario, share, rate, onset, bucket_set)["gate"]
        wrong = outcome.decision == (PROMOTE if scenario.faulty else HALT)
        if wrong or outcome.decision == TIMEOUT:
            lines.append(f"trial {index}: {outcome.decision} at {outcome.seconds:.1f} s: {outcome.reason}")
    return lines


def trials_for(plan: CutoverPlan, scenario: Scenario, trials: int) -> int:
    """Healthy default-plan steps cost a full bake (300+ polls) each: they get half the trials a
    step that decides within seconds gets. Every cell states its own n."""
    if plan.bake_seconds > 60 and not scenario.faulty:
        return max(2, trials // 2)
    return trials


# --- the table -----------------------------------------------------------------------------------

def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}" if value == 0 or value >= 0.095 else f"{value * 100:.1f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def format_cell(cell: dict[str, Any], what: str) -> str:
    gate, flagger, argo = cell["gate"], cell["flagger"], cell["argo"]
    if what == "rate":
        timeouts = f" t{_percent(gate['timeout_rate'])}" if gate["timed_out"] else ""
        return f"{_percent(gate['wrong_rate'])}{timeouts} | {_percent(flagger['wrong_rate'])} | {_percent(argo['wrong_rate'])}"
    return (f"{_seconds(gate['halt_seconds_median'])}/{_seconds(gate['halt_seconds_p95'])} | "
            f"{_seconds(flagger['halt_seconds_median'])} | {_seconds(argo['halt_seconds_median'])}")


def render_table(plan: CutoverPlan, cells: list[dict[str, Any]]) -> str:
    by_key = {(c["scenario"], c["share"], c["rate"]): c for c in cells if c["plan"] == plan.name}
    lines = [
        f"== plan {plan.name}: bake {plan.bake_seconds} s, window {plan.window_seconds} s, min_requests "
        f"{plan.min_requests}, {plan.consecutive_breaches} breaches in a row, timeout {plan.step_timeout_seconds} s ==",
        "each cell: gate | Flagger | Argo.  Rates in % of steps (gate timeouts as tN: N % of steps ran into the step "
        "timeout); times in s from fault onset to halt (gate median/p95 | Flagger median | Argo median)",
    ]
    width = 26
    header = f"{'':32}{'share':>6}  " + "".join(f"{f'{rate} req/s':<{width}}" for rate in RATES)
    for family, title, what in (("false_halt", "FALSE HALT: healthy steps halted", "rate"),
                                ("miss", "MISS: faulty steps promoted", "rate"),
                                ("miss", "TIME TO HALT a faulty step (s)", "time")):
        lines += ["", title, header]
        for scenario in SCENARIOS:
            if scenario.family != family:
                continue
            for share in SHARES:
                row = [by_key.get((scenario.name, share, rate)) for rate in RATES]
                text = "".join(f"{(format_cell(c, what) if c else '?'):<{width}}" for c in row)
                label = scenario.name if share == SHARES[0] else ""
                lines.append(f"{label:32}{share:>5}%  {text}")
    trials = sorted({c["gate"]["trials"] for c in cells if c["plan"] == plan.name})
    bounds = ", ".join(f"0/{n} -> 95 % upper bound {wilson(0, n)[1] * 100:.1f} %" for n in trials)
    lines.append(f"trials per cell: {', '.join(map(str, trials))} ({bounds}); Wilson intervals per cell in the JSON")
    return "\n".join(lines)


def target_misses(cells: list[dict[str, Any]]) -> list[str]:
    """The issue's per-step targets, cell by cell (gate only): false halt <= 1 % on healthy steps,
    miss <= 1 % at 2 % errors and 2x latency, 20 % errors halted within a few seconds at >= 25 %."""
    lines = []
    for cell in cells:
        gate = cell["gate"]
        where = f"{cell['plan']} {cell['scenario']} at {cell['share']} % of {cell['rate']} req/s"
        low, high = gate["wrong_rate_wilson95"]
        if cell["family"] == "false_halt" and gate["wrong_rate"] > 0.01:
            lines.append(f"{where}: false halt {gate['wrong_rate'] * 100:.1f} % (95 % {low * 100:.1f}-{high * 100:.1f})")
        if cell["family"] == "false_halt" and gate["timeout_rate"] > 0.01:
            lines.append(f"{where}: healthy step timed out in {gate['timeout_rate'] * 100:.0f} % (rolled back, "
                         f"cannot judge in time)")
        if cell["scenario"] in ("errors 2 %", "latency x2") and gate["wrong_rate"] > 0.01:
            lines.append(f"{where}: miss {gate['wrong_rate'] * 100:.1f} % (95 % {low * 100:.1f}-{high * 100:.1f})")
        if cell["scenario"] == "errors 20 %" and cell["share"] >= 25 and (gate["halt_seconds_p95"] or 0) > 10:
            lines.append(f"{where}: 20 % errors halted at p95 {gate['halt_seconds_p95']:.0f} s (> 10 s)")
    return lines


def _worst(cells: list[dict[str, Any]], tool: str, key: str = "wrong_rate") -> str:
    worst = max(cells, key=lambda c: (c[tool][key] or 0, -c["share"], -c["rate"]))
    value = worst[tool][key] or 0
    return "0" if value == 0 else f"{value * 100:.0f} % ({worst['share']} % of {worst['rate']:g})"


def compare_markdown(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    """Markdown before/after table of two runs' JSON cells: per plan and scenario, the worst cell
    and how many of the 16 cells miss the 1 % target, for the gate, and Flagger's and Argo's worst."""
    lines = ["| plan | scenario | gate before: worst cell | cells > 1 % | gate after: worst cell | cells > 1 % | "
             "after: timeouts, worst | Flagger worst | Argo worst |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for plan in PLANS:
        for scenario in SCENARIOS:
            rows = [[c for c in run if c["plan"] == plan and c["scenario"] == scenario.name] for run in (before, after)]
            if not all(rows):
                continue
            old, new = rows
            over = [sum((c["gate"]["wrong_rate"] or 0) > 0.01 for c in run) for run in (old, new)]
            lines.append(f"| {plan} | {scenario.name.replace(' (= latency x1.0)', ' / latency x1.0')} | "
                         f"{_worst(old, 'gate')} | {over[0]} | {_worst(new, 'gate')} | {over[1]} | "
                         f"{_worst(new, 'gate', 'timeout_rate')} | {_worst(new, 'flagger')} | {_worst(new, 'argo')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=None,
                        help="trials per cell for steps that end early (healthy default-plan steps get half); "
                             "default 60, or 4 with --quick")
    parser.add_argument("--quick", action="store_true", help="smoke test: every cell, a few trials each (~15 s)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--onset-seconds", type=int, default=0, help="fault onset, seconds after the weights change")
    parser.add_argument("--buckets", choices=sorted(BUCKET_SETS), default="apps")
    parser.add_argument("--plans", nargs="+", default=list(PLANS), help="plan names in include/plans/")
    parser.add_argument("--explain", metavar="PLAN/SCENARIO/SHARE/RATE", default=None,
                        help='print why the gate erred in one cell, e.g. "default/latency x1.3/25/20", and stop')
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE_JSON", "AFTER_JSON"), default=None,
                        help="print a markdown before/after table of two runs' JSON, and stop")
    parser.add_argument("--json", type=Path, default=None, help="write every cell here (e.g. benchmarks/gate_quality.json)")
    args = parser.parse_args(argv)
    trials = args.trials if args.trials is not None else (4 if args.quick else 60)
    if trials < 2:
        parser.error("--trials must be >= 2")
    if args.onset_seconds < 0:
        parser.error("--onset-seconds must be >= 0")

    if args.compare:
        before, after = (json.loads(path.read_text())["cells"] for path in args.compare)
        print(compare_markdown(before, after))
        return 0
    if args.explain:
        try:
            plan_name, scenario_name, share, rate = args.explain.split("/")
            scenario = next(s for s in SCENARIOS if s.name.startswith(scenario_name))
            plan = load_plan(plan_name)
        except (ValueError, StopIteration) as error:
            parser.error(f"--explain {args.explain!r}: expected PLAN/SCENARIO/SHARE/RATE with a scenario from "
                         f"{', '.join(s.name for s in SCENARIOS)} ({error})")
        for line in explain_cell(plan, scenario, int(share), float(rate), trials_for(plan, scenario, trials), args.seed,
                                 args.onset_seconds, args.buckets):
            print(line)
        return 0

    started, cpu_started = time.perf_counter(), time.process_time()
    plans = [load_plan(name) for name in args.plans]
    cells = []
    for plan in plans:
        for scenario in SCENARIOS:
            for share in SHARES:
                for rate in RATES:
                    cells.append(run_cell(plan, scenario, share, rate, trials_for(plan, scenario, trials), args.seed,
                                          args.onset_seconds, args.buckets))
        print(render_table(plan, cells), flush=True)
        print()
    misses = target_misses(cells)
    print("Cells that miss the issue's targets (gate):" if misses else "Every cell meets the issue's targets.")
    for line in misses:
        print(f"  {line}")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"{len(cells)} cells in {elapsed:.0f} s ({cpu:.0f} s of CPU; seed {args.seed}, buckets {args.buckets}, onset {args.onset_seconds} s, "
          f"judge with{'' if hasattr(slo, 'quantile_confidence_levels') else 'out'} quantile confidence bounds)")
    if args.json:
        result = {
            "what": "Monte-Carlo of the real SLO judge and gate on synthetic per-second traffic; "
                    "Flagger's and Argo Rollouts' default analyses on the same streams",
            "seed": args.seed, "trials": trials, "quick": args.quick, "onset_seconds": args.onset_seconds,
            "buckets": args.buckets, "latency": {"median_seconds": LATENCY_MEDIAN_SECONDS, "sigma": LATENCY_SIGMA},
            "judge_has_quantile_confidence_levels": hasattr(slo, "quantile_confidence_levels"),
            "plans": {plan.name: {key: getattr(plan, key) for key in ("bake_seconds", "step_timeout_seconds", "window_seconds",
                                                                       "min_requests", "consecutive_breaches",
                                                                       "poll_interval_seconds")} for plan in plans},
            "cells": cells,
            "target_misses": misses,
            "elapsed_seconds": round(elapsed, 1),
            "cpu_seconds": round(cpu, 1),
            "load_average": os.getloadavg(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
