"""The rest of the "monitor closely" list, judged green vs live blue in the same window.

The SLO judge (:mod:`cutover_kit.slo`) decides on 5xx and latency. This module measures nothing
and imports nothing that does I/O: it takes what one poll measured per color
(:class:`ColorVitals`) and the plan's optional limits (``slo.min_..._vs_blue`` /
``slo.max_..._vs_blue``), and says which limits green broke, which it could not judge for lack of
data, and what the figures were.

Rules (each only when its limit is set; an unset limit is measured and reported, never judged):

- throughput: requests per second per percent of traffic the router gives the color. A green that
  drops or refuses requests serves less than its share (``min_throughput_ratio_vs_blue``).
  Requests green forwarded to blue (strangler pattern) are counted by both apps; they are taken
  off blue's count, so each color is credited with what the router sent it.
- background jobs: jobs processed per request served by the color's own code (a forwarded order
  is queued by blue) (``min_job_rate_ratio_vs_blue``), and the failed share of jobs, green's
  against blue's (``max_job_failure_ratio_delta_vs_blue``).
- WebSockets: open connections per percent of traffic (``min_websocket_ratio_vs_blue``).
- memory: resident memory of all the color's processes (``max_memory_ratio_vs_blue``).
- CPU: CPU seconds per request served, all the color's processes (``max_cpu_per_request_ratio_vs_blue``).
- database: mean execution time of the color's statements, read from pg_stat_statements under
  the color's own database role (``max_db_statement_time_ratio_vs_blue``); differences while both
  stay below ``DB_STATEMENT_FLOOR_MS`` are noise, not a regression.

Why per request or per percent: at 25 % green serves a third of blue's requests, so raw rates
are not comparable; memory is mostly the processes' footprint, not traffic, so it is compared as
it is. Why color totals: blue runs Puma and a Sidekiq worker, green one Node process that runs
its BullMQ worker too; per process, the two stacks split the same work differently
(docs/whole-list-gate.md).

Missing data (``None``: the metric is absent, the database view unreadable) makes a set limit
INCONCLUSIVE, never PASS and never FAIL. A comparison that cannot exist (blue has too little
traffic of its own, e.g. at 100 %; the traffic split is unknown) is *not judged* and the line says
so: holding the gate would not make blue's traffic come back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cutover_kit.plan import SLOPolicy
from cutover_kit.slo import Judgement, Verdict, format_percent, wilson_interval

#: Mean statement times both below this are equal for the judge (a 0.1 ms vs 0.3 ms lookup is noise).
DB_STATEMENT_FLOOR_MS = 1.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class ColorVitals:
    """One color's figures over one judging window. ``None`` means "no data", never zero."""

    color: str
    window_seconds: float
    requests: float | None = None
    #: Share of the router's traffic this color is given (0..1); None when unknown.
    traffic_share: float | None = None
    #: quantile -> seconds (p50/p95/p99 of the color's API requests).
    latency_seconds: Mapping[float, float | None] = field(default_factory=dict)
    jobs_processed: float | None = None
    jobs_failed: float | None = None
    websocket_connections: float | None = None
    memory_bytes: float | None = None
    cpu_cores: float | None = None
    db_statement_ms: float | None = None
    db_statement_calls: float | None = None
    #: Of ``requests``, those this color passed on to the other (strangler forwarding); None: none/unknown.
    forwarded_requests: float | None = None

    @property
    def own_requests(self) -> float | None:
        """Requests this color's own code served (its requests less those it forwarded)."""
        if self.requests is None:
            return None
        return max(0.0, self.requests - (self.forwarded_requests or 0.0))

    def received(self, other: ColorVitals) -> float | None:
        """Requests the router sent this color: its requests less those the other forwarded to it."""
        if self.requests is None:
            return None
        return max(0.0, self.requests - (other.forwarded_requests or 0.0))

    def per_own_request(self, value: float | None) -> float | None:
        own = self.own_requests
        return None if value is None or not own else value / own

    @property
    def throughput_rps(self) -> float | None:
        return None if self.requests is None else self.requests / self.window_seconds

    def per_share(self, value: float | None) -> float | None:
        """A figure per percent of traffic; None without a figure or a share."""
        if value is None or not self.traffic_share:
            return None
        return value / (self.traffic_share * 100)

    def per_request(self, value: float | None) -> float | None:
        if value is None or not self.requests:
            return None
        return value / self.requests

    @property
    def cpu_seconds_per_request(self) -> float | None:
        return None if self.cpu_cores is None else self.per_request(self.cpu_cores * self.window_seconds)

    @property
    def job_failure_ratio(self) -> float | None:
        if self.jobs_processed is None or self.jobs_failed is None:
            return None
        total = self.jobs_processed + self.jobs_failed
        return self.jobs_failed / total if total else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency_seconds"] = {str(q): v for q, v in self.latency_seconds.items()}
        data["throughput_rps"] = None if self.throughput_rps is None else round(self.throughput_rps, 3)
        return data


@dataclass(frozen=True)
class VitalsJudgement:
    """Breaches (a set limit broken), doubts (a set limit without data) and notes (not judged, or
    figures of the limits that held), each a readable phrase."""

    breaches: tuple[str, ...] = ()
    doubts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    judged: tuple[str, ...] = ()

    @property
    def verdict(self) -> Verdict:
        if self.breaches:
            return Verdict.FAIL
        return Verdict.INCONCLUSIVE if self.doubts else Verdict.PASS


@dataclass(frozen=True)
class _Rule:
    limit: str  # the SLOPolicy field
    label: str  # what the line calls the figure
    read: Callable[[ColorVitals, ColorVitals], float | None]  # (this color, the other color)
    show: Callable[[float], str]
    at_least: bool  # True: green >= limit x blue; False: green <= limit x blue
    # (this color, the other) -> requests the figure is "per"; below min_requests on either color
    # the comparison does not exist (not judged). None: the figure needs no traffic.
    traffic: Callable[[ColorVitals, ColorVitals], float | None] | None = None
    traffic_label: str = ""
    floor: float = 0.0  # both below: equal


def _mib(value: float) -> str:
    return f"{value / MIB:.0f} MiB"


def _throughput(vitals: ColorVitals, other: ColorVitals) -> float | None:
    received = vitals.received(other)
    return None if received is None else vitals.per_share(received / vitals.window_seconds)


_RULES = (
    _Rule("min_throughput_ratio_vs_blue", "throughput", _throughput,
          lambda x: f"{x:.2f} req/s per % of traffic", at_least=True,
          traffic=lambda v, o: v.received(o), traffic_label="requests from the router"),
    _Rule("min_job_rate_ratio_vs_blue", "job rate", lambda v, o: v.per_own_request(v.jobs_processed),
          lambda x: f"{x:.2f} jobs/request", at_least=True,
          traffic=lambda v, o: v.own_requests, traffic_label="requests served by its own code"),
    _Rule("min_websocket_ratio_vs_blue", "WebSockets", lambda v, o: v.per_share(v.websocket_connections),
          lambda x: f"{x:.2f} connections per % of traffic", at_least=True),
    _Rule("max_memory_ratio_vs_blue", "memory", lambda v, o: v.memory_bytes, _mib, at_least=False),
    _Rule("max_cpu_per_request_ratio_vs_blue", "CPU", lambda v, o: v.cpu_seconds_per_request,
          lambda x: f"{x * 1000:.2f} ms CPU/request", at_least=False,
          traffic=lambda v, o: v.requests, traffic_label="requests"),
    _Rule("max_db_statement_time_ratio_vs_blue", "DB statement time", lambda v, o: v.db_statement_ms,
          lambda x: f"{x:.3f} ms/statement", at_least=False, floor=DB_STATEMENT_FLOOR_MS),
)
_PER_SHARE = ("min_throughput_ratio_vs_blue", "min_websocket_ratio_vs_blue")


def _judge_rule(rule: _Rule, limit: float, green: ColorVitals, blue: ColorVitals,
                min_requests: int) -> tuple[str, str]:
    """(kind, phrase): kind is "breach", "doubt", "note" or "held"."""
    if rule.limit in _PER_SHARE and not (green.traffic_share and blue.traffic_share):
        return "note", f"{rule.label} not judged: the traffic split is unknown or all on one color"
    if rule.traffic is not None:
        for subject, other in ((green, blue), (blue, green)):
            seen = rule.traffic(subject, other)
            if seen is not None and seen < min_requests:
                return "note", (f"{rule.label} not judged: {subject.color} has {seen:.0f} {rule.traffic_label} "
                                f"(< {min_requests}) to compare")
    observed, reference = rule.read(green, blue), rule.read(blue, green)
    if rule.limit == "max_db_statement_time_ratio_vs_blue":
        # Read, but nothing ran (blue at 100 % green): nothing to compare, not missing data.
        idle = [v.color for v in (green, blue) if v.db_statement_calls == 0]
        if idle:
            return "note", f"{rule.label} not judged: {' and '.join(idle)} ran no statements in the window"
    if observed is None:
        return "doubt", f"no green {rule.label} data"
    if reference is None:
        return "doubt", f"no blue {rule.label} data to compare green with"
    relation = ">=" if rule.at_least else "<="
    figures = f"green {rule.label} {rule.show(observed)} vs blue {rule.show(reference)}"
    if rule.at_least:
        if reference <= 0:
            return "held", f"{figures} (blue has none to fall short of)"
        broken = observed < limit * reference
    else:
        broken = observed > limit * reference and observed > rule.floor
    if broken:
        sign = "<" if rule.at_least else ">"
        return "breach", f"green {rule.label} {rule.show(observed)} {sign} {limit:g} x blue {rule.show(reference)}"
    return "held", f"{figures} ({relation} {limit:g} x)"


def _judge_job_failures(limit: float, green: ColorVitals, blue: ColorVitals, z: float) -> tuple[str, str]:
    """Green's failed-job share against blue's: green's kindest reading (Wilson lower bound) against
    blue's harshest (upper bound), like the 5xx rule; no jobs on a side: nothing to compare."""
    if green.jobs_failed is None or green.jobs_processed is None:
        return "doubt", "no green job failure data"
    if blue.jobs_failed is None or blue.jobs_processed is None:
        return "doubt", "no blue job failure data to compare green with"
    green_total, blue_total = green.jobs_processed + green.jobs_failed, blue.jobs_processed + blue.jobs_failed
    if not green_total or not blue_total:
        return "note", f"job failures not judged: {green_total:.0f} green and {blue_total:.0f} blue jobs in the window"
    green_ratio, blue_ratio = green.jobs_failed / green_total, blue.jobs_failed / blue_total
    lower, _ = wilson_interval(green.jobs_failed, green_total, z)
    _, blue_upper = wilson_interval(blue.jobs_failed, blue_total, z)
    figures = f"green failed jobs {format_percent(green_ratio)} vs blue {format_percent(blue_ratio)}"
    if lower - blue_upper > limit:
        return "breach", f"{figures} (> +{limit * 100:.1f} pp, {green_total:.0f} green jobs)"
    return "held", f"{figures} (<= +{limit * 100:.1f} pp)"


def judge_vitals(green: ColorVitals, blue: ColorVitals, policy: SLOPolicy, *, min_requests: int) -> VitalsJudgement:
    """Every set whole-list limit of the plan, green against live blue."""
    found: dict[str, list[str]] = {"breach": [], "doubt": [], "note": [], "held": []}
    for rule in _RULES:
        limit = getattr(policy, rule.limit)
        if limit is not None:
            kind, phrase = _judge_rule(rule, limit, green, blue, min_requests)
            found[kind].append(phrase)
    if policy.max_job_failure_ratio_delta_vs_blue is not None:
        kind, phrase = _judge_job_failures(policy.max_job_failure_ratio_delta_vs_blue, green, blue, policy.confidence_z)
        found[kind].append(phrase)
    return VitalsJudgement(tuple(found["breach"]), tuple(found["doubt"]), tuple(found["note"]), tuple(found["held"]))


def combine(slo: Judgement, vitals: VitalsJudgement, apm_note: str | None = None) -> Judgement:
    """The SLO judge's judgement with the whole list's: any breach fails, any doubt holds (unless
    something failed), and a PASS names the figures of the limits that held. The APM note (the
    route or statement slowest vs blue) is informative: it rides along and decides nothing."""
    own = slo.breaches or ((slo.reason,) if slo.verdict is Verdict.FAIL else ())
    breaches = own + vitals.breaches
    doubts = slo.doubts + vitals.doubts
    if breaches:
        verdict, parts = Verdict.FAIL, list(breaches)
    elif slo.verdict is Verdict.INCONCLUSIVE or doubts:
        verdict = Verdict.INCONCLUSIVE
        parts = [slo.reason] if slo.verdict is Verdict.INCONCLUSIVE else []
        parts += list(vitals.doubts)
    else:
        verdict, parts = Verdict.PASS, [slo.reason, *vitals.judged]
    parts += list(vitals.notes)
    if apm_note:
        parts.append(apm_note)
    return Judgement(verdict, "; ".join(part for part in parts if part), breaches, doubts)
