"""AppLogsHook: the recent lines of one color's log file, from Connection ``app_logs_blue`` or
``app_logs_green`` (conn_type fs or generic, ``extra.path`` = the file both of the color's web
processes append to). The lines are judged by the pure cutover_kit.app_logs.

Only the file's tail is read (``max_bytes``, 8 MiB by default, about 25,000 request lines): the
halt excerpt and the stage 4 check look at the last seconds or minutes, and a log file that has
grown for days must not be read whole. Line numbers are still the file's own.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.app_logs import LogLine, parse_lines, parse_recent

DEFAULT_TAIL_BYTES = 8 * 1024 * 1024
_COUNT_CHUNK = 1024 * 1024


class AppLogsError(Exception):
    """The Connection exists but does not lead to a readable log file."""


def read_tail(path: Path, max_bytes: int = DEFAULT_TAIL_BYTES) -> tuple[int, list[str]]:
    """(file line number of the first returned line, the complete lines of the last ``max_bytes``).
    A line cut by the start of the tail is dropped; so is a last line still being written."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - max_bytes)
        newlines_before = 0
        handle.seek(0)
        while handle.tell() < start:  # counting newlines in the skipped part: ~1 ms per MiB
            newlines_before += handle.read(min(_COUNT_CHUNK, start - handle.tell())).count(b"\n")
        # The tail starts mid-line unless the byte before it ends a line.
        starts_mid_line = start > 0 and handle.seek(start - 1) >= 0 and handle.read(1) != b"\n"
        data = handle.read(size - start)
    first_number = newlines_before + 1
    if starts_mid_line:
        cut = data.find(b"\n")
        data = data[cut + 1:] if cut >= 0 else b""
        first_number += 1
    complete = data[: data.rfind(b"\n") + 1]
    return first_number, complete.decode("utf-8", errors="replace").splitlines()


class AppLogsHook(BaseHook):
    conn_name_attr = "app_logs_conn_id"
    default_conn_name = connections.APP_LOGS_GREEN
    conn_type = "fs"
    hook_name = "App log file"

    def __init__(self, color: str, app_logs_conn_id: str | None = None, max_bytes: int = DEFAULT_TAIL_BYTES) -> None:
        super().__init__()
        if color not in connections.APP_LOGS_CONN_IDS:
            raise ValueError(f"color must be one of {sorted(connections.APP_LOGS_CONN_IDS)}, got {color!r}")
        self.color = color
        self.app_logs_conn_id = app_logs_conn_id or connections.APP_LOGS_CONN_IDS[color]
        self.max_bytes = max_bytes

    def get_conn(self) -> Path:
        """The log file's path (extra.path), checked to be a readable file."""
        conn = self.get_connection(self.app_logs_conn_id)
        raw = (conn.extra_dejson or {}).get("path")
        if not isinstance(raw, str) or not raw.strip():
            raise AppLogsError(f"Connection {self.app_logs_conn_id} has no extra.path naming {self.color}'s log file")
        path = Path(raw).expanduser()
        if path.is_dir():
            raise AppLogsError(f"Connection {self.app_logs_conn_id}: {path} is a directory; extra.path must name the log file")
        if not path.is_file():
            raise AppLogsError(f"Connection {self.app_logs_conn_id}: no log file at {path}")
        return path

    def recent_lines(self, since: float | None = None) -> list[LogLine]:
        """The tail's lines; with ``since``, only those written since then (and the one before,
        which dates them), parsed from the end back."""
        path = self.get_conn()
        first_number, texts = read_tail(path, self.max_bytes)
        if since is None:
            return parse_lines(texts, first_number)
        return parse_recent(texts, since, first_number)

    def source(self) -> str:
        """How the lines are named in a task log: the file's name (its line numbers follow)."""
        return self.get_conn().name
