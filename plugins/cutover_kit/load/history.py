"""Locust's stats history CSV (``--csv PREFIX --csv-full-history``) -> one figure set per step.

Only the "Aggregated" rows are read (one per second, all request types together). Row times are
whole seconds from the run's first row; step i holds the rows in (i*T, (i+1)*T]. A step's rate
and error ratio come from the cumulative counters (exact), its percentiles from its last row:
the user mix sets Locust's percentile window to one step, so that row covers the step.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
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
    if step_seconds <= 0 or step_count < 1:
        raise HistoryError(f"step_seconds must be > 0 and step_count >= 1, got {step_seconds}, {step_count}")
    reader = csv.DictReader(io.StringIO(csv_text))
    missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or ())]
    if missing:
        raise HistoryError(f"not a Locust stats history CSV: missing columns {missing}")
    rows = [row for row in reader if row["Name"] == "Aggregated"]
    if not rows:
        raise HistoryError("the stats history holds no Aggregated row: Locust recorded nothing")
    start = int(rows[0]["Timestamp"])
    by_step: dict[int, list[dict[str, str]]] = {}
    for row in rows[1:]:
        index = min(int((int(row["Timestamp"]) - start - 1) // step_seconds), step_count - 1)
        by_step.setdefault(index, []).append(row)
    figures = []
    previous_total, previous_failures, previous_time = 0, 0, start
    for index in sorted(by_step):
        last = by_step[index][-1]
        total, failures, time = int(last["Total Request Count"]), int(last["Total Failure Count"]), int(last["Timestamp"])
        requests, failed, seconds = total - previous_total, failures - previous_failures, max(time - previous_time, 1)
        figures.append(StepFigures(
            index=index,
            users=max(int(row["User Count"]) for row in by_step[index]),
            seconds=seconds,
            requests=requests,
            failures=failed,
            rate_rps=round(requests / seconds, 3),
            error_ratio=round(failed / requests, 5) if requests else None,
            p50_ms=_milliseconds(last["50%"]) if requests else None,
            p95_ms=_milliseconds(last["95%"]) if requests else None,
            p99_ms=_milliseconds(last["99%"]) if requests else None,
        ))
        previous_total, previous_failures, previous_time = total, failures, time
    return figures


def _milliseconds(value: str) -> float | None:
    return None if value in ("", "N/A") else float(value)
