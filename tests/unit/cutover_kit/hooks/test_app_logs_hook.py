"""AppLogsHook over a real file named by AIRFLOW_CONN_APP_LOGS_<COLOR>: the tail is read with the
file's own line numbers, a cut first line and a half-written last line are dropped, and a
Connection that does not lead to a file says what is wrong."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowNotFoundException

from cutover_kit.hooks.app_logs import AppLogsError, AppLogsHook, read_tail


def connect(monkeypatch, color, path):
    monkeypatch.setenv(f"AIRFLOW_CONN_APP_LOGS_{color.upper()}", json.dumps({"conn_type": "fs", "extra": {"path": str(path)}}))


def test_the_tail_keeps_the_files_line_numbers(tmp_path):
    log = tmp_path / "green.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 1001)) + "half-writ")
    first, lines = read_tail(log, max_bytes=100)
    assert lines[-1] == "line 1000" and "half-writ" not in lines
    assert lines[0] == f"line {first}"  # the line cut by the start of the tail is dropped
    assert len(lines) == 1000 - first + 1
    assert read_tail(log) == (1, [f"line {n}" for n in range(1, 1001)])


def test_a_tail_starting_exactly_on_a_line_keeps_that_line(tmp_path):
    log = tmp_path / "blue.log"
    log.write_text("a\nbb\nccc\n")
    assert read_tail(log, max_bytes=4) == (3, ["ccc"])  # "ccc\n" is exactly the last 4 bytes


def test_the_hook_parses_the_colors_file(tmp_path, monkeypatch):
    log = tmp_path / "green.log"
    log.write_text('{"time": "2026-12-08T02:00:00Z", "level": "info", "color": "green", "msg": "x"}\nplain\n')
    connect(monkeypatch, "green", log)
    hook = AppLogsHook("green")
    lines = hook.recent_lines()
    assert [(line.number, line.fields is not None) for line in lines] == [(1, True), (2, False)]
    assert hook.source() == "green.log"


def test_a_connection_that_leads_nowhere_says_what_is_wrong(tmp_path, monkeypatch):
    connect(monkeypatch, "blue", tmp_path)
    with pytest.raises(AppLogsError, match="is a directory; extra.path must name the log file"):
        AppLogsHook("blue").recent_lines()
    connect(monkeypatch, "blue", tmp_path / "missing.log")
    with pytest.raises(AppLogsError, match="no log file at"):
        AppLogsHook("blue").recent_lines()
    monkeypatch.setenv("AIRFLOW_CONN_APP_LOGS_BLUE", json.dumps({"conn_type": "fs", "extra": {}}))
    with pytest.raises(AppLogsError, match="app_logs_blue has no extra.path"):
        AppLogsHook("blue").recent_lines()


def test_no_connection_and_an_unknown_color(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_APP_LOGS_GREEN", raising=False)
    with pytest.raises(AirflowNotFoundException):
        AppLogsHook("green").recent_lines()
    with pytest.raises(ValueError, match="color must be one of"):
        AppLogsHook("purple")
