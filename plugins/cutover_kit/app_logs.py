"""The apps' structured log lines (docs/observability.md "Log lines"): parse them, pick the lines
worth showing when a step halts, and check that a color's lines keep the agreed shape. Pure: the
lines come from cutover_kit.hooks.app_logs; no Airflow, no I/O.

Both colors write one JSON object per line. Every line has ``time`` (ISO 8601, UTC), ``level``,
``color`` and ``release``; a request line (``kind`` = "request", one per request) adds
``request_id``, ``method``, ``path``, ``route``, ``status``, ``duration_ms`` and ``served_by``;
any other line has ``msg``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from numbers import Real
from typing import Any

COMMON_FIELDS = ("time", "level", "color", "release")
REQUEST_KIND = "request"
REQUEST_FIELDS = ("request_id", "method", "path", "route", "status", "duration_ms", "served_by")
MESSAGE_FIELDS = ("msg",)
ERROR_LEVELS = frozenset({"error", "fatal"})
DEFAULT_EXCERPT_LIMIT = 20
DEFAULT_SLOW_MS = 1000.0
SHOWN_TEXT_MAX = 600  # one shown line; a stack trace in a field must not flood the task log

ERROR, SLOW, OTHER = "error", "slow", "other"
# The sandbox launcher's line before each start of an app (sandbox/launcher/processes.py): it is
# in the color's file but not written by the app, so the shape check does not hold it to the format.
LAUNCHER_MARKER = re.compile(r"^=== \d{4}-\d\d-\d\d \d\d:\d\d:\d\d starting: ")
_RANK = {ERROR: 0, SLOW: 1, OTHER: 2}


@dataclass(frozen=True)
class LogLine:
    """One line of a color's log file. ``fields`` is None when the line is not a JSON object
    (a crash's stack trace, a runtime's boot banner); ``at`` is its time in epoch seconds, or
    None when it has no readable ``time``."""

    number: int
    text: str
    fields: dict[str, Any] | None
    at: float | None

    @property
    def is_launcher_marker(self) -> bool:
        return self.fields is None and LAUNCHER_MARKER.match(self.text) is not None

    @property
    def is_request(self) -> bool:
        return self.fields is not None and self.fields.get("kind") == REQUEST_KIND


def parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:  # both apps write UTC ("Z"); a naive time is read as UTC, not local
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_line(number: int, raw: str) -> LogLine | None:
    """One numbered line, or None for a blank one."""
    text = raw.rstrip("\r\n")
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    fields = value if isinstance(value, dict) else None
    return LogLine(number, text, fields, parse_time(fields.get("time")) if fields else None)


def parse_lines(texts: Iterable[str], first_number: int = 1) -> list[LogLine]:
    """Numbered lines (``first_number`` is the file line number of the first one); blank lines are
    numbered but not kept."""
    return [line for number, raw in enumerate(texts, start=first_number) if (line := parse_line(number, raw)) is not None]


def parse_recent(texts: Sequence[str], since: float, first_number: int = 1) -> list[LogLine]:
    """The lines written since ``since``, parsed from the end back: the file is in time order, so
    parsing stops at the first line older than ``since`` (kept, as the lines after it are dated
    by it). A halt reads seconds of a file that holds hours; parsing all of it took 1.1 s for
    27,000 lines on the loaded sandbox machine, this part milliseconds."""
    kept = []
    for index in range(len(texts) - 1, -1, -1):
        line = parse_line(first_number + index, texts[index])
        if line is None:
            continue
        kept.append(line)
        if line.at is not None and line.at < since:
            break
    kept.reverse()
    return kept


def _placed(lines: Sequence[LogLine]) -> list[tuple[LogLine, float | None]]:
    """Each line with the time it was written: its own, or for a line without one (a stack trace
    line) the time of the last timed line before it, since the file is written in order."""
    placed, last = [], None
    for line in lines:
        if line.at is not None:
            last = line.at
        placed.append((line, line.at if line.at is not None else last))
    return placed


def line_class(line: LogLine, slow_ms: float = DEFAULT_SLOW_MS) -> str:
    """error: an error/fatal line, a 5xx, or text that is not JSON (what a crash prints);
    slow: a request that took at least ``slow_ms``; other: the rest."""
    fields = line.fields
    if fields is None:
        return ERROR
    status = fields.get("status")
    if str(fields.get("level", "")).lower() in ERROR_LEVELS or (isinstance(status, int) and status >= 500):
        return ERROR
    duration = fields.get("duration_ms")
    if isinstance(duration, Real) and not isinstance(duration, bool) and duration >= slow_ms:
        return SLOW
    return OTHER


@dataclass(frozen=True)
class Excerpt:
    color: str
    start: float
    end: float
    total: int
    errors: int
    slow: int
    shown: tuple[LogLine, ...]
    summary: str

    def lines(self, source: str) -> list[str]:
        """The summary, then one line per shown log line: ``<source>:<line number> <text>``."""
        return [self.summary, *(f"  {source}:{line.number} {shorten(line.text)}" for line in self.shown)]


def shorten(text: str, limit: int = SHOWN_TEXT_MAX) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")


def select_excerpt(lines: Sequence[LogLine], color: str, start: float, end: float,
                   limit: int = DEFAULT_EXCERPT_LIMIT, slow_ms: float = DEFAULT_SLOW_MS) -> Excerpt:
    """The color's lines written in [start, end], at most ``limit`` of them: errors and 5xx first,
    then slow requests, then the rest, each group in file order; the summary counts what was left out."""
    if end < start:
        raise ValueError(f"the window ends ({end}) before it starts ({start})")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    in_window = [line for line, at in _placed(lines)
                 if at is not None and start <= at <= end
                 and (line.fields is None or line.fields.get("color") in (None, color))]
    classes = [(line_class(line, slow_ms), line) for line in in_window]
    errors = sum(1 for kind, _ in classes if kind == ERROR)
    slow = sum(1 for kind, _ in classes if kind == SLOW)
    ranked = sorted(classes, key=lambda pair: (_RANK[pair[0]], pair[1].number))
    shown = tuple(line for _, line in ranked[:limit])
    span = f"{color} log {_clock(start)}-{_clock(end)} UTC"
    if not in_window:
        summary = f"{span}: no lines in the window"
    else:
        slow_part = f", {slow} slow (>= {slow_ms:g} ms)" if slow else ""
        order = "errors first" if errors else "slow first" if slow else "in file order"
        tail = f"all {len(shown)}, {order}:" if len(shown) == len(in_window) else f"the first {len(shown)}, {order}:"
        summary = f"{span}: {errors} of {len(in_window)} lines in the window were errors or 5xx{slow_part}; {tail}"
    return Excerpt(color, start, end, len(in_window), errors, slow, shown, summary)


@dataclass(frozen=True)
class ShapeCheck:
    color: str
    checked: int
    problems: tuple[str, ...]
    requests: int


def _missing(fields: dict[str, Any], names: Iterable[str]) -> list[str]:
    return [name for name in names if fields.get(name) in (None, "")]


def line_problem(line: LogLine, color: str) -> str | None:
    """What is wrong with one line against the agreed shape, or None."""
    where = f"{color} log line {line.number}"
    if line.fields is None:
        return f"{where}: not a JSON object: {shorten(line.text, 120)!r}"
    fields = line.fields
    wanted = COMMON_FIELDS + (REQUEST_FIELDS if line.is_request else MESSAGE_FIELDS)
    missing = _missing(fields, wanted)
    if missing:
        what = "request line" if line.is_request else "line"
        return f"{where}: {what} without {', '.join(missing)}"
    if line.at is None:
        return f"{where}: time {fields['time']!r} is not an ISO 8601 time"
    if fields["color"] != color:
        return f"{where}: color is {fields['color']!r} in {color}'s log"
    if line.is_request:
        if not isinstance(fields["status"], int) or isinstance(fields["status"], bool):
            return f"{where}: status {fields['status']!r} is not an integer"
        if not isinstance(fields["duration_ms"], Real) or isinstance(fields["duration_ms"], bool):
            return f"{where}: duration_ms {fields['duration_ms']!r} is not a number"
    return None


def lines_since(lines: Sequence[LogLine], since: float) -> list[LogLine]:
    """The lines written at or after ``since``: everything after the last line known to be older
    (a line without a time cannot be dated, so it counts as recent once a newer line follows an
    older one; strict on purpose)."""
    cut = 0
    for index, line in enumerate(lines):
        if line.at is not None and line.at < since:
            cut = index + 1
    return list(lines[cut:])


def check_shape(lines: Sequence[LogLine], color: str, since: float) -> ShapeCheck:
    """Every line the color wrote since ``since`` parses as JSON and carries the agreed fields
    (the launcher's start markers are not the app's and are left out)."""
    recent = [line for line in lines_since(lines, since) if not line.is_launcher_marker]
    problems = tuple(problem for line in recent if (problem := line_problem(line, color)) is not None)
    return ShapeCheck(color, len(recent), problems, sum(1 for line in recent if line.is_request))


# The color a halting step blames: every gate, smoke check and approval judges green (the new
# code) against blue, so the lines that explain a halt are green's.
OFFENDING_COLOR = "green"
DEFAULT_FAULT_WINDOW_SECONDS = 60.0


def fault_window(decided_at: float, gate_result: dict[str, Any] | None,
                 default_seconds: float = DEFAULT_FAULT_WINDOW_SECONDS) -> tuple[float, float, str]:
    """(start, end, where the length came from) of the window a halt was decided on: the gate's
    judging window (its event's measurements.window_seconds) ending at the decision, else the last
    ``default_seconds`` (a smoke check or an emergency stop has no window of its own)."""
    measurements = (gate_result or {}).get("measurements") or {}
    window = measurements.get("window_seconds") if isinstance(measurements, dict) else None
    if isinstance(window, Real) and not isinstance(window, bool) and window > 0:
        return decided_at - float(window), decided_at, "the gate's judging window"
    return decided_at - default_seconds, decided_at, f"the last {default_seconds:g} s before the decision"


def find_request(lines: Sequence[LogLine], request_id: str) -> LogLine | None:
    """The request line of ``request_id`` (the last one if the id was reused)."""
    return next((line for line in reversed(lines) if line.is_request and line.fields.get("request_id") == request_id), None)


SHOWN_PROBLEMS = 5


def shape_verdict(check: ShapeCheck, probe_id: str, probe_line: LogLine | None, window_seconds: float) -> tuple[bool, str]:
    """(passed, one line) for one color: every recent line has the agreed shape, and the probe
    request sent just before reading was logged (so the check did not pass on an empty file)."""
    head = f"{check.color} log: {check.checked} lines in the last {window_seconds:g} s ({check.requests} request lines)"
    if probe_line is None:
        probe = f"the probe request {probe_id} was not logged"
    else:
        probe = f"probe request {probe_id} logged at line {probe_line.number}"
    if check.problems:
        shown = "; ".join(check.problems[:SHOWN_PROBLEMS])
        more = f" (and {len(check.problems) - SHOWN_PROBLEMS} more)" if len(check.problems) > SHOWN_PROBLEMS else ""
        return False, f"{head}: {len(check.problems)} do not have the agreed shape: {shown}{more}; {probe}"
    if probe_line is None:
        return False, f"{head}, all JSON with the agreed fields, but {probe}"
    return True, f"{head}, all JSON with the agreed fields; {probe}"
