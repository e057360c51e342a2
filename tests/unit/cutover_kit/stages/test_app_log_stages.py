"""The structured logs in the stages: the halt task's excerpt of green's lines
(stages/_halt_logs.py, called by rollback.record_halt) and stage 4's check_json_logs
(stages/monitoring.py), over real files named by AIRFLOW_CONN_APP_LOGS_* and apps replaced by a
double that appends its request line the way the real apps do."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from cutover_kit.hooks.service import Probe
from cutover_kit.stages import monitoring
from cutover_kit.stages._halt_logs import log_offending_lines

DATA = Path(__file__).resolve().parents[1] / "data"


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_line(color: str, request_id: str, status: int = 200, at: float | None = None, **override) -> str:
    fields = {"time": iso(at or time.time()), "level": "error" if status >= 500 else "info", "kind": "request",
              "color": color, "release": f"{color}@test", "request_id": request_id, "method": "GET",
              "path": "/openapi.json", "route": "/openapi.json", "status": status, "duration_ms": 2.5,
              "served_by": "rails" if color == "blue" else "typescript", **override}
    return json.dumps(fields) + "\n"


@pytest.fixture
def log_files(tmp_path, monkeypatch):
    files = {}
    for color in ("blue", "green"):
        files[color] = tmp_path / f"{color}.log"
        files[color].write_text("=== 2026-12-08 02:00:00 starting: the app\n")
        monkeypatch.setenv(f"AIRFLOW_CONN_APP_LOGS_{color.upper()}",
                           json.dumps({"conn_type": "fs", "extra": {"path": str(files[color])}}))
    return files


# ------------------------------------------------------------------------------ halt excerpt

def test_the_halt_logs_greens_lines_of_the_gates_window_errors_first(log_files, caplog):
    log_files["green"].write_text((DATA / "app_log_green.log").read_text())
    decided_at = datetime(2026, 12, 8, 2, 29, 14, 540000, tzinfo=UTC).timestamp()
    with caplog.at_level(logging.INFO, logger="cutover_kit.stages._halt_logs"):
        summary = log_offending_lines(decided_at, {"measurements": {"window_seconds": 0.54}})
    assert summary.startswith("green log 02:29:14-02:29:14 UTC: 4 of ") and "were errors or 5xx" in summary
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0] == f"{summary} (window: the gate's judging window)"
    assert all(message.startswith("  green.log:") for message in messages[1:])
    assert ['"status":500' in message for message in messages[1:5]] == [True] * 4


def test_without_the_connection_the_halt_says_so_in_one_line(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_APP_LOGS_GREEN", raising=False)
    with caplog.at_level(logging.INFO, logger="cutover_kit.stages._halt_logs"):
        note = log_offending_lines(time.time(), None)
    assert note == ("No green log excerpt: Connection app_logs_green is not defined "
                    "(extra.path = green's log file turns it on)")
    assert [record.getMessage() for record in caplog.records] == [note]


def test_an_unreadable_file_never_fails_the_halt(log_files):
    log_files["green"].unlink()
    assert log_offending_lines(time.time(), None).startswith("No green log excerpt: Connection app_logs_green: no log file at")


# ------------------------------------------------------------------------------ stage 4 check

class AppDouble:
    """Answers the probe and writes its request line, as each real app does; `echo` and `log`
    switch off what a broken app would not do."""

    def __init__(self, files, echo: bool = True, log: bool = True) -> None:
        self.files, self.echo, self.log, self.calls = files, echo, log, []

    def hook(self, conn_id):
        double = self

        class Hook:
            def probe(self, method, path, headers=None):
                color = conn_id.removeprefix("app_")
                double.calls.append((color, method, path, headers["X-Request-Id"]))
                if double.log:
                    with open(double.files[color], "a") as out:
                        out.write(request_line(color, headers["X-Request-Id"]))
                echoed = {"x-request-id": headers["X-Request-Id"]} if double.echo else {}
                return Probe(method, f"http://{color}{path}", 200, 3.0, {}, echoed)
        return Hook()


@pytest.fixture
def apps(log_files, monkeypatch):
    def make(**behaviour):
        double = AppDouble(log_files, **behaviour)
        monkeypatch.setattr("cutover_kit.hooks.service.ServiceHook", double.hook)
        return double
    monkeypatch.setattr(monitoring, "PROBE_LINE_WAIT_SECONDS", 0.3)
    return make


def test_json_logs_pass_when_every_recent_line_has_the_shape_and_the_probe_is_logged(apps, log_files):
    double = apps()
    with open(log_files["green"], "a") as out:
        out.write(request_line("green", "earlier", status=503))
    result = monitoring.check_json_logs(window_seconds=60)
    assert [(color, method, path) for color, method, path, _ in double.calls] == [("blue", "GET", "/openapi.json"),
                                                                                ("green", "GET", "/openapi.json")]
    assert result["green"]["passed"] and result["green"]["lines"] == 2 and result["green"]["request_lines"] == 2
    assert result["blue"]["line"].endswith(f"probe request {result['blue']['probe_request_id']} logged at line 2")


def test_a_bad_line_fails_naming_color_line_number_and_what_is_missing(apps, log_files):
    apps()
    with open(log_files["blue"], "a") as out:
        out.write('{"time": "%s", "level": "info", "color": "blue", "release": "r"}\n' % iso(time.time()))
        out.write("I, [2026-12-08T02:00:00] INFO -- : Started GET /api/orders/1\n")
    with pytest.raises(AirflowFailException) as failure:
        monitoring.check_json_logs(window_seconds=60)
    text = str(failure.value)
    assert "blue log line 2: line without msg" in text
    assert "blue log line 3: not a JSON object: 'I, [2026-12-08T02:00:00] INFO -- : Started GET /api/orders/1'" in text
    assert "green log" not in text  # green's lines are fine


def test_old_lines_are_not_held_against_the_app(apps, log_files):
    apps()
    with open(log_files["green"], "a") as out:
        out.write("plain text from an older release\n")
        out.write(request_line("green", "old", at=time.time() - 3600))
    assert monitoring.check_json_logs(window_seconds=60)["green"]["passed"]


def test_a_silent_app_or_one_that_drops_the_id_fails(apps):
    apps(log=False)
    with pytest.raises(AirflowFailException, match="the probe request stage4-logs-blue-[0-9a-f]+ was not logged"):
        monitoring.check_json_logs(window_seconds=60)
    apps(echo=False)
    with pytest.raises(AirflowFailException, match="blue did not echo X-Request-Id stage4-logs-blue-"):
        monitoring.check_json_logs(window_seconds=60)
