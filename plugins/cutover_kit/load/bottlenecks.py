"""Bottleneck hints of one color's load run: figures from Prometheus (CPU of the app process),
PostgreSQL (connections the color's role held, its slowest statements from pg_stat_statements)
and the load generator's own CPU time turned into one-line hints. Pure: the figures are read elsewhere (cutover_kit.load.pg_stats,
PrometheusHook) and passed in.

Hints are advisory: they never change the stage's verdict. A source that could not be read is
recorded as ``{"unavailable": "<why>"}`` and gets its own hint line, so a missing
pg_stat_statements or an unscraped instance is visible rather than silently absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# One app process can use one core: a Node event loop is single-threaded, and Ruby's GVL lets one
# Puma thread run Ruby at a time. At or above this share of a core at the knee, the process is
# what saturated.
CPU_BOUND_CORES = 0.85
# All pooled connections busy at once: requests queue for a connection (the pool is the limit).
POOL_BUSY_SHARE = 0.9
# Near the server's own limit (max_connections or the role's CONNECTION LIMIT).
SERVER_LIMIT_SHARE = 0.9
STATEMENT_TEXT_CHARS = 90
# Locust is one process (gevent): near a full core at the run's peak rate, the generator itself
# may be what stopped the rate from growing, and the "knee" is then a floor for the app's.
GENERATOR_BUSY_CORES = 0.7
# What each implementation's process is, for the CPU hint.
RUNTIME_NOTES = {"typescript": "single Node process", "rails": "one Puma process: Ruby's GVL runs one thread at a time"}


def unavailable(why: str) -> dict[str, str]:
    return {"unavailable": why}


def cpu_figures(samples: Sequence[tuple[float, float]], knee_window: tuple[float, float] | None) -> dict[str, Any]:
    """Peak and mean cores over the run, and the mean over the knee step's window (epoch seconds,
    (start, end]) when there is one, from (epoch, cores) samples."""
    if not samples:
        return unavailable("no CPU samples in the run's window")
    values = [cores for _, cores in samples]
    figures: dict[str, Any] = {"peak_cores": round(max(values), 3), "mean_cores": round(sum(values) / len(values), 3),
                               "samples": len(values), "at_knee_cores": None}
    if knee_window is not None:
        start, end = knee_window
        in_knee = [cores for at, cores in samples if start < at <= end]
        if in_knee:
            figures["at_knee_cores"] = round(sum(in_knee) / len(in_knee), 3)
    return figures


def connection_figures(samples: Sequence[Mapping[str, int]], max_connections: int | None,
                       role_limit: int | None) -> dict[str, Any]:
    """Peak connections the role held and had active at once over the run's samples
    ({"held": n, "active": n} each), with the server's limits."""
    if not samples:
        return unavailable("no pg_stat_activity sample was taken during the run")
    return {"peak_held": max(sample["held"] for sample in samples), "peak_active": max(sample["active"] for sample in samples),
            "samples": len(samples), "max_connections": max_connections,
            "role_limit": role_limit if role_limit is not None and role_limit >= 0 else None}


def _short(query: str) -> str:
    text = re.sub(r"\s+", " ", query).strip()
    return text if len(text) <= STATEMENT_TEXT_CHARS else text[:STATEMENT_TEXT_CHARS - 3] + "..."


def cpu_hint(color: str, cpu: Mapping[str, Any], runtime: str | None) -> str:
    if "unavailable" in cpu:
        return f"{color}: CPU unavailable: {cpu['unavailable']}"
    note = RUNTIME_NOTES.get(runtime or "", "one app process")
    at_knee = cpu.get("at_knee_cores")
    where, cores = ("at knee", at_knee) if at_knee is not None else ("at peak", cpu["peak_cores"])
    if cores >= CPU_BOUND_CORES:
        return f"{color}: CPU {cores:.2f} cores {where} - CPU-bound ({note})"
    return (f"{color}: CPU {cores:.2f} cores {where} (peak {cpu['peak_cores']:.2f}) - not CPU-bound ({note}):"
            " the wait is elsewhere (database, connection pool, I/O)")


def connection_hint(color: str, role: str | None, connections: Mapping[str, Any]) -> str:
    if "unavailable" in connections:
        return f"{color}: database connections unavailable: {connections['unavailable']}"
    held, active = connections["peak_held"], connections["peak_active"]
    limits = [limit for limit in (connections.get("role_limit"), connections.get("max_connections")) if limit]
    limit_text = f" of the server's {min(limits)}" if limits else ""
    line = f"{color}: {active}/{held} database connections of role {role} busy at once at peak{limit_text}"
    if limits and held >= SERVER_LIMIT_SHARE * min(limits):
        return line + " - at the server's connection limit"
    if held and active >= POOL_BUSY_SHARE * held:
        return line + " - every pooled connection busy: requests queue for a connection (pool-bound)"
    return line + " - the connection pool is not the limit"


def statement_hints(color: str, statements: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[str]:
    if isinstance(statements, Mapping):
        return [f"{color}: slowest statements unavailable: {statements['unavailable']}"]
    if not statements:
        return [f"{color}: slowest statements: pg_stat_statements recorded none for the role in the copy"]
    return [f"{color} slowest: {_short(s['query'])} {s['mean_ms']:.2f} ms mean x {s['calls']} calls"
            f" ({s['total_ms'] / 1000:.2f} s total)" for s in statements]


def generator_figures(cpu_seconds: float | None, requests: int | None, peak_rps: float | None) -> dict[str, Any]:
    """The Locust process's CPU per request over its run, and what that costs at the run's peak
    rate (a whole-run average would hide the peak: most of the run is lighter steps)."""
    if cpu_seconds is None or not requests or not peak_rps:
        return unavailable("the load generator's CPU time or request count was not recorded")
    per_request = cpu_seconds / requests
    return {"cpu_seconds": round(cpu_seconds, 2), "cpu_ms_per_request": round(1000 * per_request, 3),
            "peak_rps": peak_rps, "cores_at_peak": round(per_request * peak_rps, 3)}


def generator_hint(color: str, generator: Mapping[str, Any]) -> str:
    if "unavailable" in generator:
        return f"{color}: load generator CPU unavailable: {generator['unavailable']}"
    line = (f"{color}: the load generator (one Locust process) spent {generator['cpu_ms_per_request']:.2f} ms CPU per request,"
            f" about {generator['cores_at_peak']:.2f} cores at the peak {generator['peak_rps']:g} rps")
    if generator["cores_at_peak"] >= GENERATOR_BUSY_CORES:
        return line + " - it may be the limit: the knee is a floor for the app's"
    return line + " - not the limit"


def bottleneck_block(color: str, runtime: str | None, role: str | None, cpu: Mapping[str, Any],
                     connections: Mapping[str, Any], statements: Sequence[Mapping[str, Any]] | Mapping[str, Any],
                     generator: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`load_test.<color>.bottlenecks`: the figures and their hint lines (one per hint)."""
    hints = [cpu_hint(color, cpu, runtime), connection_hint(color, role, connections), *statement_hints(color, statements)]
    block = {"role": role, "cpu": dict(cpu), "connections": dict(connections),
             "statements": statements if isinstance(statements, Mapping) else [dict(s) for s in statements]}
    if generator is not None:
        block["generator"] = dict(generator)
        hints.append(generator_hint(color, generator))
    block["hints"] = hints
    return block
