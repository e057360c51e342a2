"""The Deadline Alerts' callback: run as the triggerer runs it (awaited, with the scheduler's simple
context), it posts one DEADLINE MISSED line to a real local receiver; a broken context or webhook is
logged, never raised. The DAG's deadline definitions are checked in tests/dags."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

from cutover_kit.notifiers.deadlines import RUN, STANDBY_WATCH, cutover_deadlines, notify_deadline_missed
from sandbox.webhook_receiver import WebhookReceiver

RUN_ID = "manual__2026-12-08T02:30:00+00:00"
CONN_ID = "cutover_notifications_deadline_unit"
# What Deadline.handle_miss hands the callback: the run as the REST API shows it, and the deadline.
SIMPLE_CONTEXT = {
    "dag_run": {"dag_id": "cutover", "dag_run_id": RUN_ID, "queued_at": "2026-12-08T02:30:00Z", "state": "running",
                "conf": {"plan": "default"}},
    "deadline": {"id": "0193", "deadline_time": "2026-12-08T08:45:00Z"},
}


def test_a_missed_deadline_posts_one_line(monkeypatch):
    with WebhookReceiver() as receiver:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(receiver.connection("/hooks/cutover")))
        sent = asyncio.run(notify_deadline_missed(watched=STANDBY_WATCH, bound_seconds=22500, plan_name="default",
                                                  conn_id=CONN_ID, context=SIMPLE_CONTEXT))
        [entry] = receiver.wait_for(1)
    assert sent is True
    facts = entry["body"]["cutover"]
    assert facts["kind"] == "deadline_missed" and facts["step"] == STANDBY_WATCH and facts["run_id"] == RUN_ID
    assert facts["text"] == ("DEADLINE MISSED: stage 13's standby watch (the run is still before its verdict) not done "
                             "6 h 15 min after the run was queued (2026-12-08T02:30:00Z); the bound comes from plan "
                             "'default'; run state running, deadline was 2026-12-08T08:45:00Z")
    assert entry["body"]["text"].endswith(f"[cutover, run {RUN_ID}]")


def test_an_unreachable_webhook_or_odd_context_is_logged_not_raised(monkeypatch, caplog):
    with WebhookReceiver() as receiver:
        port = receiver.port
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port}))
    caplog.set_level(logging.INFO)
    assert asyncio.run(notify_deadline_missed(watched=RUN, bound_seconds=60, plan_name="rehearsal", conn_id=CONN_ID,
                                              context=None)) is False
    assert asyncio.run(notify_deadline_missed(watched=RUN, bound_seconds=60, plan_name="rehearsal", conn_id=CONN_ID,
                                              context={"dag_run": "not a mapping"})) is False
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert lines[0].startswith("Cutover deadline_missed NOT notified: POST http://127.0.0.1:")
    assert lines[1].startswith("Deadline notice NOT sent: could not build it (AttributeError")


def test_alerts_from_given_plans_use_the_queued_time_and_the_worst_bounds():
    from airflow.sdk import AsyncCallback, DeadlineReference

    from cutover_kit.plan import load_plan
    from cutover_kit.run_deadlines import run_bounds

    plan = load_plan("rehearsal")
    standby, run = cutover_deadlines([plan], conn_id=CONN_ID)
    bounds = run_bounds(plan)
    assert standby.reference == DeadlineReference.DAGRUN_QUEUED_AT and run.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert standby.interval == timedelta(seconds=bounds.standby_end_seconds)
    assert run.interval == timedelta(seconds=bounds.run_end_seconds)
    assert isinstance(run.callback, AsyncCallback)
    assert run.callback.path == "cutover_kit.notifiers.deadlines.notify_deadline_missed"
    assert run.callback.kwargs == {"watched": RUN, "bound_seconds": bounds.run_end_seconds, "plan_name": "rehearsal",
                                   "conn_id": CONN_ID}
