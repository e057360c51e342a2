"""ApprovalWatchTrigger.run() without Prometheus, Redis, the router or an Airflow API: canned
Prometheus answers (tests/unit/conftest.py), and the answer reader, the request closer, the stop
reader and the reflex rollback replaced through the trigger's seams. Polls every 0.2 s."""

from __future__ import annotations

import asyncio
import time

from cutover_kit.approvals import APPROVE, REJECT, ApprovalAnswer
from cutover_kit.plan import load_plan
from cutover_kit.triggers.approval import ApprovalWatchTrigger

PLAN = {**load_plan("rehearsal").to_dict(), "poll_interval_seconds": 0.2}


class Reflex:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, event: dict, flag_backend: str | None) -> None:
        self.calls.append(dict(event))
        event.update(flags_restored_at=time.time(), traffic_restored_at=time.time(),
                     weights_after_rollback={"blue": 100, "green": 0})


def watch(source, *, answers=lambda poll: None, deadline_in=30.0, stops=lambda poll: None):
    """A trigger wired to fakes; ``answers(poll)`` is the approval's answer at each read."""
    now = time.time()
    trigger = ApprovalWatchTrigger(
        ti_id="0190f3a2-0000-7000-8000-000000000001", asking="50 %", watching="25 %", deadline=now + deadline_in,
        step_label="25 % (awaiting approval of 50 %)", plan=PLAN, bake_seconds=1, step_timeout_seconds=0.5,
        gate_started_at=now - 3, weights_set_at=now - 3, haproxy_conn_id="haproxy_default",
        state_conn_id="redis_default",
    )
    reads, polls = iter(range(1000)), iter(range(1000))
    trigger._metrics_source = lambda: source
    trigger._read_emergency_stop = lambda: stops(next(polls))
    trigger._reflex_rollback = Reflex()
    trigger._read_answer = lambda: answers(next(reads))
    trigger.closed = []
    trigger._close_request = lambda: trigger.closed.append(time.time())
    trigger.resume_guard_seconds = 0  # its own test below
    return trigger


def run(trigger) -> dict:
    async def every_event():
        return [event.payload async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(every_event(), timeout=10))
    assert len(events) == 1, events
    return events[0]


def test_a_baked_gate_does_not_end_the_wait_an_approval_does(prometheus, answers):
    # Healthy and baked from the first poll (and past its step timeout): it keeps watching until poll 5.
    trigger = watch(prometheus(answers.healthy()),
                    answers=lambda read: ApprovalAnswer((APPROVE,), "alice", time.time()) if read >= 5 else None)
    event = run(trigger)
    assert event["status"] == "success" and event["approval_outcome"] == "approved"
    assert event["polls"] >= 6 and event["answer"]["responded_by"] == "alice"
    assert event["asked_at"] == trigger.gate_started_at  # the operator's own clock, not decided_at - elapsed
    assert event["line"] == "Proceed to 50 %: approved by alice; 25 % stayed within its SLOs while waiting"
    assert trigger._reflex_rollback.calls == [] and trigger.closed == []


def test_a_breach_while_waiting_rolls_back_at_once_and_closes_the_request(prometheus, answers):
    trigger = watch(prometheus(answers.healthy(green_errors="100")))
    started = time.time()
    event = run(trigger)
    assert event["status"] == "failed" and event["approval_outcome"] == "watch_halted"
    assert event["polls"] == PLAN["consecutive_breaches"]  # at the breach, not at the deadline (30 s)
    assert time.time() - started < 5
    assert event["line"].startswith("Halt at 25 % (awaiting approval of 50 %): green 5xx")
    assert event["line"].endswith("; the approval request for 50 % is closed")
    assert len(trigger._reflex_rollback.calls) == 1 and "traffic_restored_at" in event
    assert len(trigger.closed) == 1 and event["request_closed"] is True
    assert event["asked_at"] == trigger.gate_started_at
    assert event["decided_at"] <= event["traffic_restored_at"] <= trigger.closed[0]  # rollback first, then the record


def test_a_rejection_rolls_back_through_the_reflex(prometheus, answers):
    trigger = watch(prometheus(answers.healthy()), answers=lambda read: ApprovalAnswer((REJECT,), "bob", time.time()))
    event = run(trigger)
    assert event["status"] == "failed" and event["approval_outcome"] == "rejected"
    assert event["line"] == "Roll back at 25 %: 50 % Reject by bob"
    assert len(trigger._reflex_rollback.calls) == 1 and trigger.closed == []  # a person's answer closed it


def test_no_answer_by_the_deadline_rejects_rolls_back_and_closes(prometheus, answers):
    trigger = watch(prometheus(answers.healthy()), deadline_in=0.7)
    event = run(trigger)
    assert event["approval_outcome"] == "timed_out" and event["status"] == "failed"
    assert "nobody approved 50 % by the deadline" in event["line"]
    assert len(trigger._reflex_rollback.calls) == 1 and len(trigger.closed) == 1


def test_an_emergency_stop_while_waiting_halts_at_once(prometheus, answers):
    from cutover_kit.control import EmergencyStop

    stop = EmergencyStop("green corrupts invoices", "carol", 1_700_000_000.0, "manual__1")
    trigger = watch(prometheus(answers.healthy()), stops=lambda poll: stop if poll >= 1 else None)
    event = run(trigger)
    assert event["approval_outcome"] == "watch_halted" and "emergency rollback by carol" in event["line"]
    assert len(trigger._reflex_rollback.calls) == 1 and len(trigger.closed) == 1


def test_an_unreadable_answer_keeps_watching_and_the_deadline_still_applies(prometheus, answers):
    def unreadable(read):
        raise ConnectionError("api server away")
    event = run(watch(prometheus(answers.healthy()), answers=unreadable, deadline_in=0.7))
    assert event["approval_outcome"] == "timed_out"


def test_serialize_round_trips_and_leaves_the_seams_out(prometheus, answers):
    trigger = watch(prometheus(answers.healthy()))
    path, kwargs = trigger.serialize()
    assert path == "cutover_kit.triggers.approval.ApprovalWatchTrigger"
    assert {"ti_id", "asking", "watching", "deadline", "step_label", "plan", "weights_set_at"} <= set(kwargs)
    assert not any(key.startswith("_") for key in kwargs)
    assert ApprovalWatchTrigger(**kwargs).serialize() == (path, kwargs)


def test_the_event_is_held_until_the_deferral_is_old_enough(prometheus, answers):
    # Approved at the first read, 3 s after asking: the event waits out the rest of the guard, so
    # Airflow's stale defer-exit event cannot fail the resumed task (apache/airflow#67287).
    trigger = watch(prometheus(answers.healthy()), answers=lambda read: ApprovalAnswer((APPROVE,), "alice", time.time()))
    trigger.resume_guard_seconds = 4.5
    started = time.time()
    event = run(trigger)
    assert event["approval_outcome"] == "approved"
    assert 1.0 <= time.time() - started <= 4.0


def test_the_resume_guard_counts_from_the_request():
    from cutover_kit.approvals import resume_guard_remaining

    assert resume_guard_remaining(100.0, 105.0, 20.0) == 15.0
    assert resume_guard_remaining(100.0, 130.0, 20.0) == 0.0
    assert resume_guard_remaining(None, 105.0, 20.0) == 0.0
