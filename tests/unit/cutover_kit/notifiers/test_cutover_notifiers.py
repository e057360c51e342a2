"""The cutover's notifiers against a real local webhook receiver (sandbox.webhook_receiver): what a
stage's first and last tasks, a gate, the rollback and the emergency DAG post, and that a webhook
which is down, silent or misconfigured costs the task a log line and a bounded wait, never a failure."""

from __future__ import annotations

import json
import logging
import socket
import time
from types import SimpleNamespace

import pytest

from cutover_kit.notifiers.cutover import (
    NOTIFY_TIMEOUT_SECONDS,
    EmergencyStopNotifier,
    GateDecisionNotifier,
    RollbackNotifier,
    StageNotifier,
    VerdictNotifier,
)
from sandbox.webhook_receiver import WebhookReceiver

RUN = "manual__2026-12-08T02:30:00+00:00"
CONN_ID = "cutover_notifications_unit"


class FakeTI:
    """The parts of Airflow's RuntimeTaskInstance the notifiers read: identity, states, XComs."""

    def __init__(self, task_id, try_number=1, states=None, xcoms=None):
        self.dag_id, self.run_id, self.task_id, self.try_number = "cutover", RUN, task_id, try_number
        self._states, self._xcoms = states or {}, xcoms or {}

    def get_task_states(self, dag_id, run_ids, task_ids=None, task_group_id=None):
        assert dag_id == "cutover" and run_ids == [RUN]
        selected = {task: state for task, state in self._states.items()
                    if (task_ids is None or task in task_ids)
                    and (task_group_id is None or task.startswith(f"{task_group_id}."))}
        return {RUN: selected}

    def xcom_pull(self, task_ids, key="return_value"):
        return self._xcoms.get((task_ids, key))

    def xcom_push(self, key, value):
        self._xcoms[(self.task_id, key)] = value


def context(ti, error=None, task=None):
    found = {"ti": ti, "dag": SimpleNamespace(dag_id="cutover"), "task": task or SimpleNamespace(retries=2)}
    if error is not None:
        found["exception"] = error
    return found


@pytest.fixture
def receiver(monkeypatch):
    with WebhookReceiver() as hooks:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(hooks.connection("/hooks/cutover")))
        yield hooks


def posted(receiver, count=1):
    received = receiver.wait_for(count, timeout=5)
    assert all(entry["path"] == "/hooks/cutover" for entry in received)
    return [entry["body"] for entry in received]


STAGE = "stage_05_health_checks"
ROOTS = [f"{STAGE}.blue_health", f"{STAGE}.green_health", f"{STAGE}.postgres", f"{STAGE}.redis"]


def test_first_root_to_start_announces_the_stage_once(receiver):
    start = StageNotifier(stage=STAGE, event="start", roots=ROOTS, conn_id=CONN_ID)
    xcoms = {}  # one run's XComs, shared by the stage's tasks
    first, second = FakeTI(ROOTS[2]), FakeTI(ROOTS[0])
    first._xcoms = second._xcoms = xcoms
    start(context(first))
    start(context(second))  # finds the first one's marker: quiet
    time.sleep(0.2)
    [body] = posted(receiver)
    assert len(receiver.received) == 1
    assert body["cutover"]["kind"] == "stage_started" and body["cutover"]["step"] == STAGE
    assert body["text"] == f"{STAGE} started (postgres) [cutover, run {RUN}, {ROOTS[2]} try 1]"


def test_a_first_task_resuming_after_its_deferral_does_not_announce_again(receiver):
    approve = FakeTI("stage_13_full_cutover.step_100.approve")
    approve._ti_context_from_server = SimpleNamespace(next_method="execute_complete")
    StageNotifier(stage="stage_13_full_cutover", event="start", roots=[approve.task_id], conn_id=CONN_ID)(context(approve))
    time.sleep(0.2)
    assert receiver.received == []


def test_last_leaf_to_finish_announces_the_end(receiver):
    end = StageNotifier(stage=STAGE, event="end", leaves=ROOTS, conn_id=CONN_ID)
    end(context(FakeTI(ROOTS[0], states={ROOTS[0]: "success", ROOTS[1]: "running"})))
    end(context(FakeTI(ROOTS[1], states=dict.fromkeys(ROOTS, "success"))))
    [body] = posted(receiver)
    assert body["cutover"]["kind"] == "stage_finished"
    assert body["cutover"]["text"] == f"{STAGE} finished: 4 tasks succeeded"


def test_a_failed_task_reports_its_stage_error_and_tries(receiver):
    failure = StageNotifier(stage="stage_02_database_preparation", event="failure", conn_id=CONN_ID)
    failure(context(FakeTI("stage_02_database_preparation.backup_and_verify", try_number=3),
                    RuntimeError("pg_dump: connection refused\nis the server running?")))
    [body] = posted(receiver)
    assert body["cutover"]["text"] == ("stage_02_database_preparation FAILED at backup_and_verify after 3 of 3 tries: "
                                       "pg_dump: connection refused is the server running?")
    assert body["cutover"]["try_number"] == 3


def test_gate_decision_posts_the_gates_own_line(receiver):
    gate_id = "stage_10_traffic_migration.step_25.slo_gate"
    event = {"status": "halt", "line": "Halt at 25 %: green 5xx 3.2 % > 1.0 % (3 breaches in a row)",
             "decided_at": 10.0, "traffic_restored_at": 10.3}
    from cutover_kit.sensors.slo_gate import GATE_RESULT_KEY

    ti = FakeTI(gate_id, xcoms={(gate_id, GATE_RESULT_KEY): event})
    GateDecisionNotifier(conn_id=CONN_ID, on_failure=True)(
        context(ti, RuntimeError(event["line"]), task=SimpleNamespace(step_label="25 %", retries=0)))
    [body] = posted(receiver)
    assert body["cutover"]["kind"] == "gate_decision" and body["cutover"]["step"] == "25 %"
    assert body["cutover"]["text"] == event["line"] + "; reflex rollback: traffic on blue 0.30 s after the decision"


def test_rollback_names_levels_time_and_reason(receiver):
    halt = {"step": "25 %", "reason": "Halt at 25 %: green 5xx 3.2 % > 1.0 %", "decided_at": 10.0, "traffic_restored_at": 10.5}
    ti = FakeTI("rollback.verify_blue_serving",
                states={"rollback.halt_at_5": "skipped", "rollback.halt_at_25": "success"},
                xcoms={("rollback.halt_at_25", "return_value"): halt,
                       ("rollback.flags_to_rails", "return_value"): {"verdict": "PASS"},
                       ("rollback.route_all_to_blue", "return_value"): {"weights": {"blue": 100, "green": 0}},
                       ("rollback.verify_blue_serving", "return_value"): {"reason": "10/10 probes served by blue"}})
    RollbackNotifier(flags_task_id="rollback.flags_to_rails", traffic_task_id="rollback.route_all_to_blue",
                     conn_id=CONN_ID)(context(ti))
    [body] = posted(receiver)
    assert body["cutover"]["kind"] == "rollback" and body["cutover"]["step"] == "25 %"
    assert body["cutover"]["text"] == ("Rolled back after 25 % in 0.50 s from the halt decision: flags -> Rails, "
                                       "traffic -> 100 % blue (weights blue 100, green 0); 10/10 probes served by blue. "
                                       "Why: Halt at 25 %: green 5xx 3.2 % > 1.0 %")


def test_verdict_and_emergency_stop(receiver):
    VerdictNotifier(conn_id=CONN_ID, on_failure=True)(
        context(FakeTI("cutover_verdict"), RuntimeError("Outcome rolled_back: Halt at 25 %")))
    latch = {"latched": True, "reason": "payments failing", "stop": json.dumps({"requested_by": "alice"})}
    EmergencyStopNotifier(phase="latch", conn_id=CONN_ID)(
        context(FakeTI("latch_emergency_stop", xcoms={("latch_emergency_stop", "return_value"): latch})))
    verdict, stop = posted(receiver, 2)
    assert verdict["cutover"]["text"] == "Cutover verdict: Outcome rolled_back: Halt at 25 %"
    assert stop["cutover"]["kind"] == "emergency_stop"
    assert stop["cutover"]["text"].startswith("EMERGENCY STOP latched by alice: payments failing;")
    with pytest.raises(ValueError, match="phase"):
        EmergencyStopNotifier(phase="later")
    with pytest.raises(ValueError, match="event"):
        StageNotifier(stage=STAGE, event="paused")


def test_without_the_exception_a_failure_reports_what_the_task_recorded(receiver):
    # dag.test() runs failure callbacks without context["exception"]: the recorded halt stands in.
    smoke_id = "stage_10_traffic_migration.step_25.stage_11_smoke_checks"
    smoke = {"verdict": "FAIL", "reason": "Halt at 25 %: Smoke at 25 %: FAIL GET /api/users/1: HTTP 500 (5xx)",
             "decided_at": 10.0, "traffic_restored_at": 10.1}
    StageNotifier(stage="stage_10_traffic_migration", event="failure", conn_id=CONN_ID)(
        context(FakeTI(smoke_id, xcoms={(smoke_id, "smoke_result"): smoke}), task=SimpleNamespace(retries=0)))
    VerdictNotifier(conn_id=CONN_ID, on_failure=True)(context(FakeTI("cutover_verdict", xcoms={
        ("cutover_verdict", "smoke_failure"): "Outcome rolled_back: Halt at 25 %"})))
    VerdictNotifier(conn_id=CONN_ID, on_failure=True)(context(FakeTI("cutover_verdict")))
    VerdictNotifier(conn_id=CONN_ID)(context(FakeTI("cutover_verdict", xcoms={
        ("cutover_verdict", "return_value"): {"outcome": "promoted", "reason": "Promoted: 100 % green"}})))
    texts = [body["cutover"]["text"] for body in posted(receiver, 4)]
    assert texts == [
        "stage_10_traffic_migration FAILED at step_25.stage_11_smoke_checks: Halt at 25 %: Smoke at 25 %: FAIL GET "
        "/api/users/1: HTTP 500 (5xx); reflex rollback: traffic on blue 0.10 s after the decision",
        "Cutover verdict: Outcome rolled_back: Halt at 25 %",
        "Cutover verdict: the task failed (its error is in the task log)",
        "Cutover verdict: promoted: Promoted: 100 % green",
    ]


# ------------------------------------------------------------------------------------ never in the way


def errors(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_missing_connection_is_logged_not_raised(monkeypatch, caplog):
    monkeypatch.delenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", raising=False)
    caplog.set_level(logging.INFO)
    VerdictNotifier(conn_id=CONN_ID, on_failure=True)(context(FakeTI("cutover_verdict"), RuntimeError("Outcome promoted")))
    [line] = errors(caplog)
    assert line.startswith(f"Cutover verdict NOT notified: webhook Connection '{CONN_ID}' is unavailable")
    assert line.endswith(f"The cutover goes on: Cutover verdict: Outcome promoted [cutover, run {RUN}, cutover_verdict try 1]")


def test_a_silent_webhook_holds_the_task_for_the_bounded_timeout_only(monkeypatch, caplog):
    # A socket that accepts connections (the kernel's backlog) but never answers: the read must time out.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": silent.getsockname()[1],
             "extra": {"endpoint": "/hooks/cutover", "timeout_seconds": 30}}))
        caplog.set_level(logging.INFO)
        started = time.monotonic()
        VerdictNotifier(conn_id=CONN_ID, on_failure=True)(context(FakeTI("cutover_verdict"), RuntimeError("Outcome promoted")))
        waited = time.monotonic() - started
    finally:
        silent.close()
    assert NOTIFY_TIMEOUT_SECONDS - 0.1 <= waited < NOTIFY_TIMEOUT_SECONDS + 1.5, waited  # not the Connection's 30 s
    [line] = errors(caplog)
    assert "Cutover verdict NOT notified: POST http://127.0.0.1:" in line and "ReadTimeout" in line


def test_a_notice_that_cannot_be_built_is_logged_not_raised(receiver, caplog):
    caplog.set_level(logging.INFO)
    broken_ti = SimpleNamespace(dag_id="cutover", run_id=RUN, task_id=ROOTS[0], try_number=1)  # no get_task_states
    StageNotifier(stage=STAGE, event="end", leaves=ROOTS, conn_id=CONN_ID)(context(broken_ti))
    [line] = errors(caplog)
    assert line.startswith("Cutover notice NOT sent: StageNotifier could not build it (AttributeError")
    assert receiver.received == []
