"""What `make rehearsal` prints for a person: one line per task as it ends, a live line while a gate
bakes, then the stage table. Airflow's own log goes to a file (see :func:`output_to_file`).

Pure formatting and throttling here (tested without Airflow); where the events come from is
sandbox/dag_watch.py.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TextIO

GROUP_WIDTH = 30  # stage_02_database_preparation is 29
TASK_WIDTH = 36  # step_25.stage_11_smoke_checks is 30
VERDICT_WIDTH = 12
PLAIN_PROGRESS_INTERVAL_SECONDS = 5.0  # CI logs: a gate's progress at most this often
PLAIN_WIDTH = 200  # no terminal: lines still readable; the full reasons are in the result and the log
CLEAR_TO_END_OF_LINE = "\x1b[K"
# Task states that end an attempt; skipped and upstream_failed tasks never ran (the table lists them).
ENDED_STATES = ("success", "failed", "up_for_retry")
STATE_LABELS = {"up_for_retry": "RETRY"}


def split_task_id(task_id: str) -> tuple[str, str]:
    """('stage_10_traffic_migration', 'step_25.slo_gate'); a task outside any group: ('-', task_id)."""
    group, dot, rest = task_id.partition(".")
    return (group, rest) if dot else ("-", task_id)


def shorten(text: str, width: int) -> str:
    text = " ".join(str(text).split())  # one line, whatever the source
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def task_end_line(task_id: str, verdict: str, reason: str, *, elapsed_seconds: float | None = None,
                  width: int | None = None) -> str:
    """'  41s  stage_10_traffic_migration  step_25.slo_gate  PASS  Promote past 25 %: ...'."""
    group, task = split_task_id(task_id)
    clock = f"{elapsed_seconds:5.0f}s  " if elapsed_seconds is not None else ""
    head = f"{clock}{group:{GROUP_WIDTH}} {task:{TASK_WIDTH}} {verdict:{VERDICT_WIDTH}}"
    reason = " ".join(str(reason or "").split())
    if width is not None:
        reason = shorten(reason, max(20, width - len(head) - 1))
    return f"{head} {reason}".rstrip()


def task_header() -> str:
    return f"{'time':>6}  {'stage':{GROUP_WIDTH}} {'task':{TASK_WIDTH}} {'verdict':{VERDICT_WIDTH}} reason"


def progress_line(fields: dict[str, Any], *, width: int | None = None) -> str:
    """'        gate 25 %: 12/30 s healthy, poll 7, last PASS green 5xx 0.0 % ...' from the trigger's
    per-poll fields (cutover_kit.triggers.slo_gate logs them with its decision line)."""
    healthy = float(fields.get("healthy_seconds") or 0.0)
    bake = float(fields.get("bake_seconds") or 0.0)
    line = (f"{'':8}gate {fields.get('step', '?')}: {healthy:.0f}/{bake:.0f} s healthy, poll {fields.get('polls', '?')}, "
            f"last {fields.get('verdict', '?')} {' '.join(str(fields.get('reason') or '').split())}").rstrip()
    return shorten(line, width) if width is not None else line


def gate_fields(extra: Any) -> dict[str, Any] | None:
    """The gate's per-poll fields from a log call's `extra=` data (a stdlib record's attribute or a
    structlog event's `extra` key), or None when the record is not a gate poll."""
    if not isinstance(extra, dict):
        return None
    fields = extra.get("gate")
    return fields if isinstance(fields, dict) and "healthy_seconds" in fields else None


def plain_progress_due(last_printed_at: float | None, now: float,
                       interval: float = PLAIN_PROGRESS_INTERVAL_SECONDS) -> bool:
    return last_printed_at is None or now - last_printed_at >= interval


class Console:
    """Writes the person's lines. On a terminal the gate's progress line is rewritten in place
    (``\\r``) and cleared before the next permanent line; elsewhere (CI logs) it is a plain line at
    most every :data:`PLAIN_PROGRESS_INTERVAL_SECONDS`. Thread-safe: the task watcher and the log
    tap write from different threads."""

    def __init__(self, stream: TextIO, *, live: bool, width: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.live = live
        self.width = width
        self.clock = clock
        self._lock = threading.Lock()
        self._progress_shown = False  # a live line is on screen
        self._last_plain_progress: float | None = None

    def line(self, text: str) -> None:
        with self._lock:
            self._clear_progress()
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_plain_progress = None  # the next gate poll shows at once

    def progress(self, text: str) -> None:
        with self._lock:
            if self.live:
                self.stream.write("\r" + (shorten(text, self.width - 1) if self.width else text) + CLEAR_TO_END_OF_LINE)
                self._progress_shown = True
            else:
                now = self.clock()
                if not plain_progress_due(self._last_plain_progress, now):
                    return
                self._last_plain_progress = now
                self.stream.write(text + "\n")
            self.stream.flush()

    def end_progress(self) -> None:
        with self._lock:
            self._clear_progress()
            self.stream.flush()

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.stream.write("\r" + CLEAR_TO_END_OF_LINE)
            self._progress_shown = False


@contextmanager
def output_to_file(path: os.PathLike | str) -> Iterator[TextIO]:
    """Send everything written to file descriptors 1 and 2 (Airflow's structlog and stdlib
    handlers, stray prints, child processes) to `path`; yield a stream on the real stdout for
    the person's lines. Redirecting the descriptors, not sys.stdout, catches the handlers and
    loggers that captured the stream object at configuration time."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with open(path, "ab", buffering=0) as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            yield console
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            console.close()
