"""The SLO judge: measurements of one judging window in, a verdict with a one-line reason out.

Pure functions only (no Airflow, no I/O) so every rule is unit-tested in milliseconds.

Rules, in the order a human would check them:
1. Critical checks: a color whose metrics target is down fails at once.
2. Not enough data (no series, or fewer than ``min_requests`` green requests in the window) is
   INCONCLUSIVE: it must neither promote nor roll back by itself.
3. Error ratio: green fails only when the *lower* bound of its Wilson score interval is above the
   limit, i.e. when we are confident the breach is real. One error in 20 requests is 5 % but not
   evidence of a 1 % breach; 40 errors in 200 is. A point estimate above the limit whose lower
   bound is not is INCONCLUSIVE (hold and gather more data) rather than PASS.
4. Green vs live blue, measured in the same window. When blue has too little traffic of its own
   (e.g. at 100 % green) the pre-cutover blue baseline stands in, and the reason says so.
5. Latency: green p95/p99 may be at most ``max_latency_ratio_vs_blue`` x blue's, ignoring
   differences below ``latency_floor_seconds`` (sub-floor noise is not a degradation). A quantile
   is judged only with at least ``TAIL_SAMPLES`` requests beyond it (p95: 100 requests, p99: 500):
   the p99 of 40 requests is just the slowest one (seen under a real scheduler: "green p99 158 ms
   vs blue 29 ms" over 2 s, then healthy). Like the error ratio, a quantile is a sample: green
   fails only when the *lower* confidence bound of its quantile is over the limit set by blue's
   *upper* bound. The bounds are order statistics: with n requests, the rank of the true p95 lies
   within n*0.95 +- z*sqrt(n*0.95*0.05), so the bounds are the histogram's quantiles at those
   levels (:func:`quantile_confidence_levels`; the measurement reads them from the same
   histogram). A point ratio over the limit whose bounds do not confirm it is INCONCLUSIVE (hold,
   gather more data), never PASS. Measured on 2 cores: identical apps read "green p95 186 ms vs blue
   113 ms" over a 4 s window of 120 requests; the bounds of such a window span ~0.91-0.99.
   A plan whose metric templates have no latency histogram (e.g. the HAProxy-only set) is judged
   without rule 5 (``judge_latency=False``); every PASS then says that latency was not judged.
6. Blue's own SLOs (stage 12): blue must not regress against its pre-cutover baseline while
   traffic moves (5xx over the limit, or p95 over ``max_blue_regression_ratio`` x baseline); a
   regression is a FAIL (a shared dependency is hurting both sides).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from cutover_kit.plan import SLOPolicy


TAIL_SAMPLES = 5


def samples_needed(quantile: float) -> int:
    """Requests needed before a quantile means something: TAIL_SAMPLES beyond it."""
    return math.ceil(TAIL_SAMPLES / (1 - quantile) - 1e-9)


def quantile_confidence_levels(quantile: float, requests: float, z: float) -> tuple[float, float]:
    """The levels whose quantiles bound the true ``quantile`` of ``requests`` samples at confidence z.

    Order statistics: the number of samples below the true q-quantile is Binomial(n, q), so its
    rank lies within n*q +- z*sqrt(n*q*(1-q)) (normal approximation, plus half a rank of continuity
    correction). Dividing by n gives the levels; clamped to [0, 1], where Prometheus's
    histogram_quantile(1, ...) is the highest bucket that holds a sample. Rounded to 4 decimals, so
    the PromQL text stays short and equal inputs give equal queries."""
    if requests <= 0:
        return 0.0, 1.0
    spread = z * math.sqrt(quantile * (1 - quantile) / requests) + 0.5 / requests
    return round(max(0.0, quantile - spread), 4), round(min(1.0, quantile + spread), 4)


class Verdict(str, Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class ColorWindow:
    """What one color did in one judging window. ``None`` means "no data", never zero."""

    color: str
    requests: float | None
    errors: float | None
    latency_seconds: dict[float, float | None] = field(default_factory=dict)
    up: bool | None = None
    # quantile -> (lower, upper) confidence bound of that quantile; empty when not measured (an
    # older XCom, a test): the judge then uses the point value for both.
    latency_bounds: dict[float, tuple[float | None, float | None]] = field(default_factory=dict)

    def latency_lower(self, quantile: float) -> float | None:
        """The kindest reading of this color's quantile: its lower bound, else the point value."""
        lower = self.latency_bounds.get(quantile, (None, None))[0]
        return self.latency_seconds.get(quantile) if lower is None else lower

    def latency_upper(self, quantile: float) -> float | None:
        """The harshest reading of this color's quantile: its upper bound, else the point value."""
        upper = self.latency_bounds.get(quantile, (None, None))[1]
        return self.latency_seconds.get(quantile) if upper is None else upper

    @property
    def error_ratio(self) -> float | None:
        if not self.requests or self.errors is None:
            return None
        return self.errors / self.requests

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency_seconds"] = {str(q): v for q, v in self.latency_seconds.items()}
        data["latency_bounds"] = {str(q): list(v) for q, v in self.latency_bounds.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColorWindow:
        latency = {float(q): v for q, v in (data.get("latency_seconds") or {}).items()}
        bounds = {float(q): (v[0], v[1]) for q, v in (data.get("latency_bounds") or {}).items()}
        return cls(
            color=data["color"],
            requests=data.get("requests"),
            errors=data.get("errors"),
            latency_seconds=latency,
            up=data.get("up"),
            latency_bounds=bounds,
        )


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str
    breaches: tuple[str, ...] = ()
    doubts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "breaches": list(self.breaches),
            "doubts": list(self.doubts),
        }


def wilson_interval(errors: float, requests: float, z: float) -> tuple[float, float]:
    """Wilson score interval with continuity correction (Newcombe 1998, method 4).

    The correction matters at the counts a gate sees: without it, 1 error in 15 requests gives a
    lower bound of 1.2 % (a "breach" of 1 %), although a true rate of 1 % yields at least one error
    in 15 requests 14 % of the time. With it the bound is 0.35 %; 3 errors in 20 give 4.0 %."""
    if requests <= 0:
        return 0.0, 1.0
    n = requests
    p = min(max(errors / n, 0.0), 1.0)
    zz = z * z
    denominator = 2 * (n + zz)
    lower = 0.0
    if p > 0:
        root = math.sqrt(max(0.0, zz - 2 - 1 / n + 4 * p * (n * (1 - p) + 1)))
        lower = max(0.0, (2 * n * p + zz - 1 - z * root) / denominator)
    upper = 1.0
    if p < 1:
        root = math.sqrt(max(0.0, zz + 2 - 1 / n + 4 * p * (n * (1 - p) - 1)))
        upper = min(1.0, (2 * n * p + zz + 1 + z * root) / denominator)
    # min/max with p: float rounding must never put the estimate outside its own interval.
    return min(lower, p), max(upper, p)


def format_percent(ratio: float) -> str:
    return f"{ratio * 100:.1f} %"


def format_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def confidence_label(z: float) -> str:
    """1.96 -> '95 %': the two-sided confidence a z value stands for."""
    return f"{math.erf(z / math.sqrt(2)) * 100:.0f} %"


def quantile_label(quantile: float) -> str:
    return f"p{quantile * 100:g}"


def _blue_reference(
    blue: ColorWindow, baseline: ColorWindow | None, min_requests: int
) -> tuple[ColorWindow | None, str]:
    """Live blue when it had enough traffic in this window, else the pre-cutover baseline."""
    if blue.requests is not None and blue.requests >= min_requests:
        return blue, "blue"
    if baseline is not None and baseline.requests:
        return baseline, "blue baseline"
    return None, "blue"


def _check_critical(green: ColorWindow, blue: ColorWindow) -> list[str]:
    return [f"{window.color} is down (metrics target not answering)" for window in (green, blue) if window.up is False]


def _check_green_errors(
    green: ColorWindow,
    reference: ColorWindow | None,
    reference_name: str,
    policy: SLOPolicy,
    window_label: str,
) -> tuple[list[str], list[str]]:
    breaches: list[str] = []
    doubts: list[str] = []
    ratio = green.error_ratio or 0.0
    lower, _ = wilson_interval(green.errors or 0.0, green.requests or 0.0, policy.confidence_z)
    traffic = f"over {window_label}, {green.requests:.0f} requests"
    if lower > policy.max_error_ratio:
        breaches.append(f"green 5xx {format_percent(ratio)} > {format_percent(policy.max_error_ratio)} {traffic}")
    elif ratio > policy.max_error_ratio:
        doubts.append(
            f"green 5xx {format_percent(ratio)} above {format_percent(policy.max_error_ratio)} "
            f"but not yet significant {traffic}"
        )
    if reference is not None and reference.error_ratio is not None:
        # Green's lower bound against the reference's upper bound: both are samples, so green is
        # worse only when even the kindest reading of green is worse than the harshest of blue.
        if reference.requests:
            _, reference_upper = wilson_interval(reference.errors or 0.0, reference.requests, policy.confidence_z)
        else:
            reference_upper = reference.error_ratio
        delta = lower - reference_upper
        if delta > policy.max_error_ratio_delta_vs_blue:
            breaches.append(
                f"green 5xx {format_percent(ratio)} vs {reference_name} {format_percent(reference.error_ratio)} "
                f"(> +{policy.max_error_ratio_delta_vs_blue * 100:.1f} pp) {traffic}"
            )
    return breaches, doubts


def _check_latency(
    subject: ColorWindow,
    reference: ColorWindow | None,
    reference_name: str,
    policy: SLOPolicy,
    verb: str,
    max_ratio: float | None = None,
    quantiles: tuple[float, ...] | None = None,
) -> tuple[list[str], list[str]]:
    breaches: list[str] = []
    doubts: list[str] = []
    max_ratio = policy.max_latency_ratio_vs_blue if max_ratio is None else max_ratio
    for quantile in policy.quantiles if quantiles is None else quantiles:
        label = quantile_label(quantile)
        if (subject.requests or 0) < samples_needed(quantile):
            continue  # too few requests for this quantile to mean anything: not judged
        observed = subject.latency_seconds.get(quantile)
        if observed is None:
            doubts.append(f"no {subject.color} {label} latency data")
            continue
        if reference is None or reference.latency_seconds.get(quantile) is None:
            doubts.append(f"no {reference_name} {label} to compare {subject.color} with")
            continue
        expected = reference.latency_seconds[quantile]
        ratio = observed / expected if expected > 0 else math.inf
        point_limit = max(max_ratio * expected, policy.latency_floor_seconds)
        # The kindest reading of the subject against the harshest reading of the reference: both
        # quantiles are samples, as in the error rule.
        observed_low = subject.latency_lower(quantile)
        expected_high = reference.latency_upper(quantile)
        limit = max(max_ratio * expected_high, policy.latency_floor_seconds)
        comparison = (f"{subject.color} {label} {format_ms(observed)} {verb} {reference_name} {format_ms(expected)} "
                      f"(x{ratio:.2f} > x{max_ratio:g}")
        if observed_low > limit:
            bounds_differ = observed_low != observed or expected_high != expected
            evidence = (f"; at {confidence_label(policy.confidence_z)} confidence >= {format_ms(observed_low)} "
                        f"vs <= {format_ms(expected_high)}" if bounds_differ else "")
            breaches.append(f"{comparison}{evidence})")
        elif observed > point_limit:
            doubts.append(
                f"{comparison} but not yet significant: >= {format_ms(observed_low)} vs <= {format_ms(expected_high)} "
                f"at {confidence_label(policy.confidence_z)} confidence)"
            )
    return breaches, doubts


def judge_window(
    green: ColorWindow,
    blue: ColorWindow,
    policy: SLOPolicy,
    *,
    min_requests: int,
    window_seconds: float,
    blue_baseline: ColorWindow | None = None,
    judge_latency: bool = True,
) -> Judgement:
    """Judge one window: green against live blue (or blue's baseline), and blue against its baseline.
    ``judge_latency=False``: the plan's templates measure no latency, so latency rules are skipped."""
    window_label = f"{window_seconds:.0f} s"
    breaches = _check_critical(green, blue)
    doubts: list[str] = []

    if not breaches:
        if green.requests is None:
            doubts.append("no green request data in Prometheus")
        elif green.requests < min_requests:
            doubts.append(f"only {green.requests:.0f} green requests in {window_label} (< {min_requests})")
        else:
            reference, reference_name = _blue_reference(blue, blue_baseline, min_requests)
            error_breaches, error_doubts = _check_green_errors(green, reference, reference_name, policy, window_label)
            latency_breaches, latency_doubts = (
                _check_latency(green, reference, reference_name, policy, "vs") if judge_latency else ([], [])
            )
            breaches += error_breaches + latency_breaches
            doubts += error_doubts + latency_doubts

        blue_breaches = _check_blue_regression(blue, blue_baseline, policy, min_requests, window_label, judge_latency)
        breaches += blue_breaches

    if breaches:
        return Judgement(Verdict.FAIL, "; ".join(breaches), tuple(breaches), tuple(doubts))
    if doubts:
        return Judgement(Verdict.INCONCLUSIVE, "; ".join(doubts), (), tuple(doubts))
    summary = _healthy_summary(green, blue, blue_baseline, policy, min_requests, window_label)
    if not judge_latency:
        summary += "; latency not judged (the plan's metric templates have no latency histogram)"
    return Judgement(Verdict.PASS, summary)


def _check_blue_regression(
    blue: ColorWindow,
    baseline: ColorWindow | None,
    policy: SLOPolicy,
    min_requests: int,
    window_label: str,
    judge_latency: bool = True,
) -> list[str]:
    """Stage 12: blue keeps its own SLOs while traffic moves. Too little blue traffic: nothing to judge."""
    if blue.requests is None or blue.requests < min_requests:
        return []
    breaches: list[str] = []
    lower, _ = wilson_interval(blue.errors or 0.0, blue.requests, policy.confidence_z)
    if lower > policy.max_error_ratio:
        breaches.append(
            f"blue 5xx {format_percent(blue.error_ratio or 0.0)} > {format_percent(policy.max_error_ratio)} "
            f"over {window_label}, {blue.requests:.0f} requests"
        )
    if baseline is not None and judge_latency:
        latency_breaches, _ = _check_latency(
            blue, baseline, "its baseline", policy, "regressed vs",
            max_ratio=policy.max_blue_regression_ratio, quantiles=policy.quantiles[:1],
        )
        breaches += latency_breaches
    return breaches


def _healthy_summary(
    green: ColorWindow,
    blue: ColorWindow,
    baseline: ColorWindow | None,
    policy: SLOPolicy,
    min_requests: int,
    window_label: str,
) -> str:
    reference, reference_name = _blue_reference(blue, baseline, min_requests)
    first = policy.quantiles[0]
    green_latency = green.latency_seconds.get(first) if (green.requests or 0) >= samples_needed(first) else None
    parts = [f"green 5xx {format_percent(green.error_ratio or 0.0)} <= {format_percent(policy.max_error_ratio)}"]
    if green_latency is not None and reference is not None and reference.latency_seconds.get(first) is not None:
        parts.append(
            f"{quantile_label(first)} {format_ms(green_latency)} vs {reference_name} "
            f"{format_ms(reference.latency_seconds[first])}"
        )
    return f"{', '.join(parts)} over {window_label}, {green.requests:.0f} requests"


def summarize_baseline(blue: ColorWindow, *, min_requests: int, window_seconds: float) -> Judgement:
    """Is a captured blue baseline usable? Too little traffic or missing latency is INCONCLUSIVE."""
    if blue.up is False:
        return Judgement(Verdict.FAIL, "blue is down (metrics target not answering)")
    if blue.requests is None or blue.requests < min_requests:
        seen = "no" if blue.requests is None else f"{blue.requests:.0f}"
        return Judgement(
            Verdict.INCONCLUSIVE, f"blue baseline has {seen} requests in {window_seconds:.0f} s (< {min_requests})"
        )
    missing = [quantile_label(q) for q, v in blue.latency_seconds.items() if v is None]
    if missing:
        return Judgement(Verdict.INCONCLUSIVE, f"blue baseline lacks {', '.join(missing)} latency")
    latency = ", ".join(f"{quantile_label(q)} {format_ms(v)}" for q, v in blue.latency_seconds.items() if v is not None)
    latency = latency or "latency not measured (no histogram in the plan's metric templates)"
    return Judgement(
        Verdict.PASS,
        f"blue baseline: 5xx {format_percent(blue.error_ratio or 0.0)}, {latency} over "
        f"{window_seconds:.0f} s, {blue.requests:.0f} requests",
    )
