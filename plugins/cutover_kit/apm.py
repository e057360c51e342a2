"""APM for the gate: which route and which database statement green runs slowest against blue.

Pure (no I/O). Informative only: the gate's line and event name the worst of each, and a plan's
limits (cutover_kit.vitals) are what fail a step.

Routes. Both apps label their request histograms with the route template, each in its own
dialect (Rails ``/api/users/:id``, the Node app ``/api/users/{id}``); :func:`route_key` writes
both as ``GET /api/users/{id}`` so the same route of the two colors meets.

Statements. Blue (ActiveRecord) and green (hand-written SQL) never send the same text, so a
statement is classed by what it does and to which table: :func:`statement_class` reads
``SELECT "orders".* FROM "orders" WHERE ...`` and ``SELECT id, amount FROM orders WHERE ...``
alike as ``SELECT orders``. pg_stat_statements counts from the server's start, so the gate keeps
its readings (:class:`StatementWindow`) and judges the difference over its own window.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

_PARAMETER = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_IDENTIFIER = r'"?([A-Za-z_][A-Za-z0-9_$]*)"?(?:\s*\.\s*"?([A-Za-z_][A-Za-z0-9_$]*)"?)?'
_TABLE_AFTER = {
    "SELECT": re.compile(r"\bFROM\s+" + _IDENTIFIER, re.IGNORECASE),
    "INSERT": re.compile(r"\bINTO\s+" + _IDENTIFIER, re.IGNORECASE),
    "UPDATE": re.compile(r"^\s*UPDATE\s+(?:ONLY\s+)?" + _IDENTIFIER, re.IGNORECASE),
    "DELETE": re.compile(r"\bFROM\s+(?:ONLY\s+)?" + _IDENTIFIER, re.IGNORECASE),
}
_VERB = re.compile(r"^\s*(?:WITH\b.*?\)\s*)?(SELECT|INSERT|UPDATE|DELETE)\b", re.IGNORECASE | re.DOTALL)


def route_key(method: str, route: str) -> str:
    """``GET /api/users/{id}`` from either dialect (``:id`` or ``{id}``)."""
    template = _PARAMETER.sub(r"{\1}", route)
    return f"{method.upper()} {template}"


def statement_class(query: str) -> str:
    """``SELECT orders``, ``INSERT line_items``...: the verb and the first table it names
    (schema dropped); ``SELECT (no table)`` for ``SELECT 1``; ``OTHER`` for anything else."""
    verb_match = _VERB.match(query)
    if not verb_match:
        return "OTHER"
    verb = verb_match.group(1).upper()
    body = query[verb_match.start(1):]
    table = _TABLE_AFTER[verb].search(body)
    if not table:
        return f"{verb} (no table)"
    return f"{verb} {(table.group(2) or table.group(1)).lower()}"


@dataclass(frozen=True)
class Slowdown:
    """One route or statement class: green's figure against blue's (seconds or ms, as named)."""

    name: str
    green: float
    blue: float

    @property
    def ratio(self) -> float:
        return self.green / self.blue if self.blue > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 3)}


def rank(green: Mapping[str, float | None], blue: Mapping[str, float | None], floor: float) -> list[Slowdown]:
    """Names both colors have, slowest-on-green-relative-to-blue first. A name where both figures
    are below ``floor`` is left out (sub-floor differences are noise, as in the latency rule)."""
    both = [Slowdown(name, green[name], blue[name]) for name in green.keys() & blue.keys()
            if green[name] is not None and blue[name] is not None and max(green[name], blue[name]) >= floor]
    return sorted(both, key=lambda slow: (-slow.ratio, slow.name))


def worst(ranked: list[Slowdown]) -> Slowdown | None:
    """The first of a ranking when green is slower there at all; None when green is nowhere slower."""
    return ranked[0] if ranked and ranked[0].ratio > 1 else None


# ---- statements over a window ---------------------------------------------------------------

#: class -> (calls, total execution ms)
StatementTotals = dict[str, tuple[float, float]]


def totals_by_class(rows: Iterable[Mapping[str, Any]]) -> StatementTotals:
    """pg_stat_statements rows ({query, calls, total_ms}) summed per :func:`statement_class`."""
    totals: StatementTotals = {}
    for row in rows:
        name = statement_class(row["query"])
        calls, total = totals.get(name, (0.0, 0.0))
        totals[name] = (calls + float(row["calls"]), total + float(row["total_ms"]))
    return totals


def difference(now: StatementTotals, before: StatementTotals) -> StatementTotals:
    """What ran between two readings. A class whose counters went down (pg_stat_statements_reset,
    an entry evicted and re-created) is counted from zero: its new count is all we know."""
    delta: StatementTotals = {}
    for name, (calls, total) in now.items():
        was_calls, was_total = before.get(name, (0.0, 0.0))
        if calls < was_calls or total < was_total:
            was_calls, was_total = 0.0, 0.0
        if calls - was_calls > 0:
            delta[name] = (calls - was_calls, total - was_total)
    return delta


def mean_ms(totals: StatementTotals) -> dict[str, float]:
    return {name: total / calls for name, (calls, total) in totals.items() if calls > 0}


def overall_mean_ms(totals: StatementTotals) -> tuple[float | None, float]:
    """(mean ms per statement over every class or None without calls, calls)."""
    calls = sum(c for c, _ in totals.values())
    return (sum(t for _, t in totals.values()) / calls if calls else None), calls


class StatementWindow:
    """The readings of one role, kept for as long as the judging window reaches back: the
    difference between the newest reading and the newest one at least ``window`` older (the
    oldest kept before that much history exists)."""

    def __init__(self) -> None:
        self._readings: list[tuple[float, StatementTotals]] = []

    def add(self, at: float, totals: StatementTotals, window_seconds: float) -> StatementTotals | None:
        """Record a reading; the window's difference, None on the very first reading (no interval yet)."""
        self._readings.append((at, totals))
        cutoff = at - window_seconds
        # Keep the newest reading at or before the cutoff (the window's start) and everything after.
        while len(self._readings) > 2 and self._readings[1][0] <= cutoff:
            self._readings.pop(0)
        if len(self._readings) < 2:
            return None
        return difference(totals, self._readings[0][1])


def describe_worst(route: Slowdown | None, statement: Slowdown | None, quantile_label: str) -> str | None:
    """One phrase for the gate's line: "slowest vs blue: GET /api/orders/{id} p95 31 ms vs 12 ms
    (x2.58), SELECT orders 0.90 ms vs 0.30 ms per statement (x3.00)"; None when nothing is slower."""
    parts = []
    if route is not None:
        parts.append(f"{route.name} {quantile_label} {route.green * 1000:.0f} ms vs {route.blue * 1000:.0f} ms "
                     f"(x{route.ratio:.2f})")
    if statement is not None:
        parts.append(f"{statement.name} {statement.green:.2f} ms vs {statement.blue:.2f} ms per statement "
                     f"(x{statement.ratio:.2f})")
    return f"APM, slowest vs blue: {', '.join(parts)}" if parts else None
