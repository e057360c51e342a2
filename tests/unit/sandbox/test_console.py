"""The rehearsal console: task-end lines, the gate's progress line, TTY vs plain throttling, the log
tap and the task watcher, all without Airflow."""

from __future__ import annotations

import io
import logging
import os
from datetime import datetime, timedelta, timezone

from sandbox.console import (
    CLEAR_TO_END_OF_LINE,
    Console,
    gate_fields,
    output_to_file,
    plain_progress_due,
    progress_line,
    split_task_id,
    task_end_line,
)
from sandbox.dag_watch import DAG_TEST_LOGGER, LogTap, TaskWatcher
from sandbox.result import TaskRecord

GATE = {"polls": 7, "healthy_seconds": 12.4, "bake_seconds": 30.0, "step": "25 %", "decision": "continue",
        "verdict": "PASS", "reason": "green 5xx 0.0 % <= 1.0 %"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_task_id_splits_into_stage_and_task():
    assert split_task_id("stage_10_traffic_migration.step_25.slo_gate") == ("stage_10_traffic_migration", "step_25.slo_gate")
    assert split_task_id("verify_data_integrity") == ("-", "verify_data_integrity")


def test_task_end_line_names_stage_task_verdict_and_one_line_reason():
    line = task_end_line("stage_10_traffic_migration.step_25.slo_gate", "FAIL",
                         "Halt at 25 %: green 5xx 3.2 % > 1.0 %\n(2 breaches in a row)", elapsed_seconds=41.6)
    assert line.startswith("   42s  stage_10_traffic_migration ")
    assert " step_25.slo_gate " in line and " FAIL " in line
    assert line.endswith("Halt at 25 %: green 5xx 3.2 % > 1.0 % (2 breaches in a row)")
    assert "\n" not in line


def test_task_end_line_fits_the_terminal_width():
    line = task_end_line("stage_02_database_preparation.validate_with_great_expectations", "PASS", "x" * 500,
                         elapsed_seconds=3, width=140)
    assert len(line) <= 140 and line.endswith("...")
    assert task_end_line("cutover_verdict", "PASS", "", elapsed_seconds=None).endswith("PASS")


def test_progress_line_shows_step_healthy_over_bake_and_last_verdict():
    line = progress_line(GATE)
    assert "gate 25 %: 12/30 s healthy, poll 7, last PASS green 5xx 0.0 % <= 1.0 %" in line
    assert len(progress_line(GATE, width=40)) == 40


def test_gate_fields_come_only_from_a_gate_poll():
    assert gate_fields({"gate": GATE}) == GATE
    assert gate_fields({"gate": None}) is None
    assert gate_fields(None) is None
    assert gate_fields({"gate": {"step": "5 %"}}) is None  # not the trigger's fields


def test_on_a_terminal_progress_is_rewritten_in_place_and_cleared_by_the_next_line():
    out = io.StringIO()
    console = Console(out, live=True, width=80)
    console.progress("gate 5 %: 2/30 s")
    console.progress("gate 5 %: 4/30 s")
    console.line("stage_10 step_5.slo_gate PASS")
    assert out.getvalue() == (f"\rgate 5 %: 2/30 s{CLEAR_TO_END_OF_LINE}\rgate 5 %: 4/30 s{CLEAR_TO_END_OF_LINE}"
                              f"\r{CLEAR_TO_END_OF_LINE}stage_10 step_5.slo_gate PASS\n")
    console.line("next")  # no progress on screen: nothing to clear
    assert out.getvalue().endswith("PASS\nnext\n")


def test_without_a_terminal_progress_is_a_plain_line_at_most_every_five_seconds():
    out, clock = io.StringIO(), FakeClock()
    console = Console(out, live=False, clock=clock)
    for clock.now, text in ((0.0, "p0"), (2.0, "p2"), (4.9, "p4.9"), (5.0, "p5"), (9.0, "p9"), (10.5, "p10.5")):
        console.progress(text)
    assert out.getvalue() == "p0\np5\np10.5\n"
    assert "\r" not in out.getvalue() and CLEAR_TO_END_OF_LINE not in out.getvalue()
    clock.now = 11.0
    console.line("task ended")
    console.progress("next gate")  # a new gate shows at once
    assert out.getvalue().endswith("task ended\nnext gate\n")


def test_plain_progress_due():
    assert plain_progress_due(None, 0.0)
    assert not plain_progress_due(10.0, 14.9)
    assert plain_progress_due(10.0, 15.0)


def _record(name: str, message: str, *args, level=logging.INFO, exc_info=None, **extra) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, message, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_log_tap_remembers_each_tasks_decision_and_error_and_shows_gate_progress():
    out = io.StringIO()
    tap = LogTap(Console(out, live=False))
    tap.emit(_record("cutover_kit.stages.readiness", "before any task"))  # no task yet: ignored
    tap.emit(_record(DAG_TEST_LOGGER, "[DAG TEST] starting task_id=%s map_index=%s", "stage_01.check", -1))
    tap.emit(_record("cutover_kit.stages.readiness", "Endpoints: %d of %d reachable", 5, 5))
    tap.emit(_record("airflow.task", "framework chatter"))
    assert tap.decisions == {"stage_01.check": "Endpoints: 5 of 5 reachable"}
    try:
        raise RuntimeError("blue answered 503")
    except RuntimeError as error:
        tap.emit(_record("airflow.task", "Task failed", level=logging.ERROR, exc_info=(type(error), error, None)))
    assert tap.errors == {"stage_01.check": "blue answered 503"}
    tap.emit(_record("cutover_kit.triggers.slo_gate", "Hold at 25 %: PASS ...", gate=GATE))
    assert "gate 25 %: 12/30 s healthy" in out.getvalue()


def test_log_tap_hears_structlog_events_and_passes_them_on_untouched():
    out = io.StringIO()
    tap = LogTap(Console(out, live=True, width=120))
    tap.current_task = "stage_10_traffic_migration.step_25.slo_gate"
    event = {"event": "Hold at %s: PASS", "positional_args": ("25 %",), "extra": {"gate": GATE}}
    assert tap.processor(None, "info", dict(event)) == event
    assert "\rgate 25 %: 12/30 s healthy" in out.getvalue().replace(" " * 8, "")
    tap.processor(None, "info", {"event": "Promote past 25 %", "extra": {"gate": {**GATE, "decision": "success"}}})
    assert out.getvalue().endswith("\r" + CLEAR_TO_END_OF_LINE)  # the final decision clears the live line
    try:
        raise ValueError("several series for green")
    except ValueError:
        tap.processor(None, "error", {"event": "Task failed with exception", "exc_info": True})
    assert tap.errors == {"stage_10_traffic_migration.step_25.slo_gate": "several series for green"}


def test_task_watcher_prints_each_ended_attempt_once_in_end_order_with_its_reason():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    records = [
        TaskRecord("stage_05_health_checks.redis", "success", start, start + timedelta(seconds=9),
                   return_value={"reason": "redis PONG in 2 ms"}),
        TaskRecord("stage_01_deployment_readiness.validate_plan", "success", start, start + timedelta(seconds=3)),
        TaskRecord("stage_08_rollback_procedures.rollback_drill", "failed", start, start + timedelta(seconds=12)),
        TaskRecord("stage_10_traffic_migration.step_5.set_weights", "running", start, None),
        TaskRecord("rollback.halt_at_5", "skipped", None, None),
    ]
    out = io.StringIO()
    tap = LogTap(Console(out, live=False))
    tap.decisions["stage_01_deployment_readiness.validate_plan"] = "Plan rehearsal valid: 5 steps"
    tap.errors["stage_08_rollback_procedures.rollback_drill"] = "green already had traffic"
    watcher = TaskWatcher(lambda: records, tap.console, tap, started_at=start)
    watcher.sweep()
    watcher.sweep()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("    3s  stage_01_deployment_readiness") and lines[0].endswith("PASS         Plan rehearsal valid: 5 steps")
    assert "redis" in lines[1] and lines[1].endswith("redis PONG in 2 ms")
    assert "rollback_drill" in lines[2] and " FAIL " in lines[2] and lines[2].endswith("green already had traffic")
    records.append(TaskRecord("stage_12_blue_monitoring.capture_blue_baseline", "up_for_retry", start,
                              start + timedelta(seconds=20)))
    watcher.sweep()
    assert out.getvalue().splitlines()[-1].split()[1:4] == ["stage_12_blue_monitoring", "capture_blue_baseline", "RETRY"]


def test_output_to_file_sends_descriptors_1_and_2_to_the_log_and_keeps_the_console(tmp_path, capfd):
    log_file = tmp_path / "airflow.log"
    with output_to_file(log_file) as console:
        os.write(1, b"framework line\n")
        os.write(2, b"framework warning\n")
        console.write("the person's line\n")
    captured = capfd.readouterr()
    assert "the person's line" in captured.out
    assert "framework" not in captured.out + captured.err
    assert log_file.read_text().splitlines() == ["framework line", "framework warning"]
