"""Locust's stats history CSV (``--csv PREFIX --csv-full-history``) -> one figure set per step.

Only the "Aggregated" rows are read (one per second, all request types together). Row times are
whole seconds from the run's first row; step i holds the rows in (i*T, (i+1)*T]. A step's rate
and error ratio come from the cumulative counters (exact), its percentiles from its last row:
the user mix sets Locust's percentile window to one step, so that row covers the step.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any


class HistoryError(ValueError):
    """The CSV is not Locust's stats history, or holds no sample."""


REQUIRED_COLUMNS = ("Timestamp", "User Count", "Name", "50%", "95%", "99%", "Total Request Count", "Total Failure Count")


@dataclass(frozen=True)
class StepFigures:
    index: int
    users: int
    seconds: float
    requests: int
    failures: int
    rate_rps: float
    error_ratio: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_step_figures(csv_text: str, step_seconds: float, step_count: int) -> list[StepFigures]:
    """Per-step figures of a run of `step_count` steps of `step_seconds` each (a step the run
    never reached, e.g. after the request cap, is absent)."""
    return parse_run_figures(csv_text, step_seconds, step_count).steps


@dataclass(frozen=True)
class SecondFigures:
    """One second of the recovery phase: `offset_seconds` from the phase's start to this row."""

    offset_seconds: int
    users: int
    requests: int
    failures: int
    error_ratio: float | None
    p95_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunFigures:
    steps: list[StepFigures]
    # The stress step past the knee (index = step_count), None without one or when never reached.
    stress: StepFigures | None = None
    # The recovery phase second by second (the locustfile sets a 1 s percentile window there).
    recovery: list[SecondFigures] = field(default_factory=list)
    # Epoch second of the run's first history row: step i spans (start + i*T, start + (i+1)*T].
    start_epoch: int | None = None


def parse_run_figures(csv_text: str, step_seconds: float, step_count: int, stress_seconds: float | None = None,
                      recovery_seconds: float | None = None) -> RunFigures:
    """Per-step figures, then (with `stress_seconds`) the stress step's figures and the recovery
    phase second by second. Without a stress phase, rows after the last step (Locust stopping)
    count in the last step; with one, rows after the recovery phase are dropped."""
    if step_seconds <= 0 or step_count < 1:
        raise HistoryError(f"step_seconds must be > 0 and step_count >= 1, got {step_seconds}, {step_count}")
    if stress_seconds is not None and (stress_seconds <= 0 or not recovery_seconds or recovery_seconds <= 0):
        raise HistoryError(f"stress_seconds and recovery_seconds must be > 0, got {stress_seconds}, {recovery_seconds}")
    rows = _aggregated_rows(csv_text)
    start = int(rows[0]["Timestamp"])
    steps_end = step_seconds * step_count
    by_step: dict[int, list[dict[str, str]]] = {}
    stress_rows: list[dict[str, str]] = []
    recovery_rows: list[dict[str, str]] = []
    for row in rows[1:]:
        offset = int(row["Timestamp"]) - start
        if stress_seconds is None or offset <= steps_end:
            index = min(int((offset - 1) // step_seconds), step_count - 1)
            by_step.setdefault(index, []).append(row)
        elif offset <= steps_end + stress_seconds:
            stress_rows.append(row)
        elif offset <= steps_end + stress_seconds + recovery_seconds:
            recovery_rows.append(row)
    figures = []
    previous = (0, 0, start)
    for index in sorted(by_step):
        figure, previous = _phase_figures(index, by_step[index], previous)
        figures.append(figure)
    stress = None
    if stress_rows:
        stress, previous = _phase_figures(step_count, stress_rows, previous)
    recovery = []
    recovery_start = start + steps_end + (stress_seconds or 0)
    for row in recovery_rows:
        total, failures = int(row["Total Request Count"]), int(row["Total Failure Count"])
        requests, failed = total - previous[0], failures - previous[1]
        recovery.append(SecondFigures(
            offset_seconds=int(int(row["Timestamp"]) - recovery_start), users=int(row["User Count"]),
            requests=requests, failures=failed, error_ratio=round(failed / requests, 5) if requests else None,
            p95_ms=_milliseconds(row["95%"]) if requests else None))
        previous = (total, failures, int(row["Timestamp"]))
    return RunFigures(figures, stress, recovery, start)


def _aggregated_rows(csv_text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(csv_text))
    missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or ())]
    if missing:
        raise HistoryError(f"not a Locust stats history CSV: missing columns {missing}")
    rows = [row for row in reader if row["Name"] == "Aggregated"]
    if not rows:
        raise HistoryError("the stats history holds no Aggregated row: Locust recorded nothing")
    return rows


def _phase_figures(index: int, rows: list[dict[str, str]], previous: tuple[int, int, int]) -> tuple[StepFigures, tuple[int, int, int]]:
    """A phase's figures from its rows: rate and errors from the cumulative counters since
    `previous` (total, failures, time), percentiles from its last row (a window of the phase)."""
    last = rows[-1]
    total, failures, time = int(last["Total Request Count"]), int(last["Total Failure Count"]), int(last["Timestamp"])
    requests, failed, seconds = total - previous[0], failures - previous[1], max(time - previous[2], 1)
    figure = StepFigures(
        index=index,
        users=max(int(row["User Count"]) for row in rows),
        seconds=seconds,
        requests=requests,
        failures=failed,
        rate_rps=round(requests / seconds, 3),
        error_ratio=round(failed / requests, 5) if requests else None,
        p50_ms=_milliseconds(last["50%"]) if requests else None,
        p95_ms=_milliseconds(last["95%"]) if requests else None,
        p99_ms=_milliseconds(last["99%"]) if requests else None,
    )
    return figure, (total, failures, time)


def _milliseconds(value: str) -> float | None:
    return None if value in ("", "N/A") else float(value)
