"""Feeds the rehearsal console (sandbox/console.py) while ``dag.test()`` runs.

Two sources, each the most robust for what it gives:
- task ends: the metadata database, polled from a thread (task instance states and the XComs the
  final table reads, turned into a row by the same ``stage_row``), so a line says what the table
  will say;
- what only the log knows: the gate trigger's per-poll fields (its decision line carries them as
  ``extra={"gate": ...}``), the exception a failed task raised, and the last decision line a
  cutover_kit logger wrote for the task. ``dag.test()`` runs every task and trigger in this
  process, one at a time, so a :class:`LogTap` hears them as a root logging handler (stdlib) and
  as the first structlog processor (Airflow's own loggers, triggers and operators included).
"""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from sandbox.console import ENDED_STATES, STATE_LABELS, Console, gate_fields, progress_line, task_end_line

log = logging.getLogger(__name__)

# dag.test() names the task it starts in this record (airflow/sdk/definitions/dag.py, _run_task):
# the only place an in-process run says which task the next log lines belong to.
DAG_TEST_LOGGER = "airflow.sdk.definitions.dag"
DAG_TEST_TASK_START = "[DAG TEST] starting task_id="
DECISION_LOGGER_PREFIX = "cutover_kit"
POLL_SECONDS = 0.5


def exception_text(error: BaseException | None) -> str | None:
    if error is None:
        return None
    text = " ".join(str(error).split())
    return text or type(error).__name__


class LogTap(logging.Handler):
    """Hears every log record of the run; remembers per task its last decision line and error,
    and shows the gate's per-poll progress on the console."""

    def __init__(self, console: Console) -> None:
        super().__init__(level=logging.INFO)
        self.console = console
        self.current_task: str | None = None
        self.decisions: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    # stdlib records (root handler)
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name == DAG_TEST_LOGGER and str(record.msg).startswith(DAG_TEST_TASK_START) and record.args:
                self.current_task = str(record.args[0])
            self.hear(record.name, record.levelno, record.getMessage(),
                      {"gate": getattr(record, "gate", None)}, record.exc_info[1] if record.exc_info else None)
        except Exception:  # a console must never break the run it reports
            self.handleError(record)

    # structlog events (first processor): returns the event untouched
    def processor(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        try:
            message = str(event_dict.get("event", ""))
            if event_dict.get("positional_args"):
                try:
                    message = message % tuple(event_dict["positional_args"])
                except (TypeError, ValueError):
                    pass
            name = str(event_dict.get("logger") or event_dict.get("logger_name") or getattr(logger, "name", "") or "")
            level = logging.getLevelName(method_name.upper()) if isinstance(method_name, str) else logging.INFO
            self.hear(name, level if isinstance(level, int) else logging.INFO, message, event_dict.get("extra"),
                      _structlog_exception(event_dict.get("exc_info")))
        except Exception:
            pass
        return event_dict

    def hear(self, logger_name: str, level: int, message: str, extra: Any, error: BaseException | None) -> None:
        task = self.current_task
        fields = gate_fields(extra)
        if fields is not None:
            if fields.get("decision") == "continue":
                self.console.progress(progress_line(fields, width=self.console.width))
            else:
                self.console.end_progress()
        if task is None:
            return
        if error is not None:
            self.errors[task] = exception_text(error) or ""
        elif logger_name.startswith(DECISION_LOGGER_PREFIX) and level >= logging.INFO and message.strip():
            self.decisions[task] = message


def _structlog_exception(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1]
    if exc_info:  # True: the exception being handled right now
        return sys.exc_info()[1]
    return None


class TaskWatcher:
    """Polls the run's task records and prints one console line per ended task attempt."""

    def __init__(self, read_records: Callable[[], list[Any]], console: Console, tap: LogTap, *,
                 started_at: datetime | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        self.read_records = read_records
        self.console = console
        self.tap = tap
        self.started_at = started_at or datetime.now(timezone.utc)
        self.poll_seconds = poll_seconds
        self._reported: set[tuple[str, str, Any]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rehearsal-console", daemon=True)

    def start(self) -> "TaskWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            self.sweep()  # the last tasks, ended since the previous poll
        except Exception as error:
            log.warning("console: last task records unreadable: %s", error)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.sweep()
            except Exception as error:  # e.g. SQLite busy: the next poll catches up
                log.debug("console: task records unreadable this poll: %s", error)

    def sweep(self) -> None:
        from sandbox.result import stage_row

        ended = [r for r in self.read_records() if r.state in ENDED_STATES and r.started_at and r.ended_at]
        for record in sorted(ended, key=lambda r: (r.ended_at, r.task_id)):
            key = (record.task_id, record.state, record.ended_at)
            if key in self._reported:
                continue
            self._reported.add(key)
            self.console.line(self.line_for(record, stage_row(record)))

    def line_for(self, record: Any, row: dict[str, Any]) -> str:
        reason = row["reason"]
        if record.state != "success":
            reason = reason or self.tap.errors.get(record.task_id, "")
        reason = reason or self.tap.decisions.get(record.task_id, "")
        return task_end_line(
            record.task_id, STATE_LABELS.get(record.state, row["verdict"]), reason,
            elapsed_seconds=(record.ended_at - self.started_at).total_seconds(), width=self.console.width,
        )


@contextmanager
def watching(console: Console, read_records: Callable[[], list[Any]]) -> Iterator[LogTap]:
    """While the block runs (``dag.test()``), print task ends and the gate's progress."""
    import structlog

    tap = LogTap(console)
    root = logging.getLogger()
    root.addHandler(tap)
    previous = list(structlog.get_config()["processors"])
    structlog.configure(processors=[tap.processor, *previous])
    watcher = TaskWatcher(read_records, console, tap).start()
    try:
        yield tap
    finally:
        try:
            watcher.stop()
        finally:
            structlog.configure(processors=previous)
            root.removeHandler(tap)
            console.end_progress()
