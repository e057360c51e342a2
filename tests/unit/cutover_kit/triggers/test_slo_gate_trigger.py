"""SLOGateTrigger.run() without Prometheus, Redis, HAProxy or a scheduler: the real hook parses
canned answers (tests/unit/conftest.py), and the emergency-stop reader and the reflex rollback are
replaced through the trigger's seams. Small timings: a poll every 0.2 s (the plan's minimum)."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests

from cutover_kit.control import CutoverStateError, EmergencyStop
from cutover_kit.dead_man import GateHeartbeat
from cutover_kit.gate import GateDecision, GateProgress
from cutover_kit.plan import load_plan
from cutover_kit.triggers.slo_gate import SLOGateTrigger

PLAN = {**load_plan("rehearsal").to_dict(), "poll_interval_seconds": 0.2}
STEP_TIMEOUT = 0.3  # three polls


class Reflex:
    """Stands in for the reflex rollback; records what the event held when it ran."""

    def __init__(self, raises: Exception | None = None) -> None:
        self.calls: list[tuple[dict, str | None]] = []
        self.raises = raises

    def __call__(self, event: dict, flag_backend: str | None) -> None:
        self.calls.append((dict(event), flag_backend))
        if self.raises:
            raise self.raises
        event["flags_restored_at"] = time.time()
        event["traffic_restored_at"] = time.time()
        event["weights_after_rollback"] = {"blue": 100, "green": 0}


def gate(source, *, stops=lambda poll: None, plan=PLAN, reflex=None, healthy_before=0.0, step_timeout=STEP_TIMEOUT):
    """A trigger wired to fakes. ``stops(poll)`` returns the latched stop (or raises) on each poll;
    ``healthy_before`` starts the gate that long ago, so a first PASS already covers the 1 s bake;
    the step times out ``step_timeout`` seconds after this call."""
    now = time.time()
    trigger = SLOGateTrigger(
        step_label="25 %", plan=plan, bake_seconds=1, step_timeout_seconds=healthy_before + step_timeout,
        gate_started_at=now - healthy_before, weights_set_at=now - healthy_before,
        haproxy_conn_id="haproxy_default", state_conn_id="redis_default",
    )
    polls = iter(range(1000))
    trigger._metrics_source = lambda: source
    trigger._read_emergency_stop = lambda: stops(next(polls))
    trigger._reflex_rollback = reflex if reflex is not None else Reflex()
    return trigger


def run(trigger) -> dict:
    async def every_event():
        return [event.payload async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(every_event(), timeout=5))
    assert len(events) == 1, events  # exactly one verdict per gate
    return events[0]


def test_promotes_after_a_healthy_bake_and_moves_nothing(prometheus, answers):
    trigger = gate(prometheus(answers.healthy()), healthy_before=3.0, step_timeout=40)
    event = run(trigger)
    assert event["status"] == "success" and event["verdict"] == "PASS", event["line"]
    assert event["line"].startswith("Promote past 25 %: green 5xx 0.0 %")
    assert event["measurements"]["green"]["requests"] == 1000
    assert trigger._reflex_rollback.calls == []  # a pass rolls nothing back


def test_halts_on_green_errors_and_rolls_back_flags_then_traffic_before_the_event(prometheus, answers):
    trigger = gate(prometheus(answers.healthy(green_errors="100")), step_timeout=40)
    event = run(trigger)
    assert event["status"] == "failed" and event["polls"] == PLAN["consecutive_breaches"]
    assert event["line"].startswith("Halt at 25 %: green 5xx 10.0 % > 1.0 %"), event["line"]
    [(seen, flag_backend)] = trigger._reflex_rollback.calls
    assert flag_backend == PLAN["flag_backend"]
    assert seen["status"] == "failed" and "traffic_restored_at" not in seen  # ran once, on the decision
    # The yielded event carries the rollback's facts: it ran before the event, flags first, then traffic.
    assert event["decided_at"] <= event["flags_restored_at"] <= event["traffic_restored_at"]
    assert event["weights_after_rollback"] == {"blue": 100, "green": 0}


def test_an_emergency_stop_halts_at_once_and_rolls_back(prometheus, answers):
    stop = EmergencyStop("green corrupts invoices", "alice", 1_700_000_000.0, "manual__1")
    trigger = gate(prometheus(answers.healthy()), stops=lambda poll: stop if poll >= 1 else None, step_timeout=40)
    event = run(trigger)
    assert event["status"] == "failed" and event["polls"] == 1  # one healthy poll, then the stop
    assert event["line"].startswith("Halt at 25 %: emergency rollback by alice") and "green corrupts invoices" in event["line"]
    assert EmergencyStop.from_json(event["emergency_stop"]) == stop
    assert len(trigger._reflex_rollback.calls) == 1 and "traffic_restored_at" in event


def test_an_unreadable_emergency_stop_never_promotes(prometheus, answers):
    def unreadable(poll):
        raise CutoverStateError("cutover state (redis_default) unavailable while reading the emergency stop")
    trigger = gate(prometheus(answers.healthy()), stops=unreadable, healthy_before=3.0)
    event = run(trigger)
    assert event["status"] == "inconclusive" and "cutover state unreadable" in event["reason"]
    assert len(trigger._reflex_rollback.calls) == 1


def on(query_part, failure, otherwise):
    """Answer ``failure`` to the queries containing ``query_part``, the healthy answer to the rest."""
    def answer(promql):
        return failure(promql) if query_part in promql else otherwise(promql)
    return answer


def raise_(error):
    def answer(promql):
        raise error
    return answer


GREEN_P95 = 'histogram_quantile(0.95, (sum by (le) (rate(http_request_duration_seconds_bucket{job="apps",color="green"'
BLUE_REQUESTS = 'sum(increase(http_server_requests_total{job="apps",color="blue",path=~"/api/.*"}['
MEASUREMENT_ERRORS = {
    "several series": (GREEN_P95, lambda a: lambda q: a.vector("0.02", "0.03"),
                       "Prometheus bad answer measuring green p95 latency: query 'histogram_quantile(0.95"),
    "several series on blue": (BLUE_REQUESTS, lambda a: lambda q: a.vector("500", "500"),
                               "Prometheus bad answer measuring blue requests"),
    "non-number": ("color=\"green\"", lambda a: lambda q: a.vector("lots"), "Prometheus bad answer measuring green up"),
    "NaN": (GREEN_P95, lambda a: lambda q: a.vector("NaN"), "no green p95 latency data"),
    "timeout": ("", lambda a: raise_(requests.ReadTimeout("read timed out")),
                "Prometheus unavailable measuring green up: Prometheus at http://127.0.0.1:9 did not answer"),
    "refused query": (GREEN_P95, lambda a: lambda q: a.http(400, {"status": "error", "error": "parse error"}),
                      "Prometheus refused the query measuring green p95 latency: Prometheus refused query"),
    "HTTP 5xx": ("", lambda a: lambda q: a.http(503, "Service Unavailable"), "HTTP 503 Service Unavailable"),
    "connection refused": ("", lambda a: raise_(requests.ConnectionError("[Errno 111] Connection refused")),
                           "Prometheus unavailable measuring green up"),
    "malformed JSON": ("", lambda a: lambda q: a.http(200, "{\"status\": \"succ"),
                       "Prometheus bad answer measuring green up: Prometheus answered"),
}


@pytest.mark.parametrize("kind", MEASUREMENT_ERRORS, ids=list(MEASUREMENT_ERRORS))
def test_every_measurement_error_is_inconclusive_never_promotes_and_rolls_back_on_timeout(prometheus, answers, kind):
    query_part, failure, reason = MEASUREMENT_ERRORS[kind]
    # Green has been healthy long enough to promote on its first PASS: only the error holds it back.
    trigger = gate(prometheus(on(query_part, failure(answers), answers.healthy())), healthy_before=3.0)
    event = run(trigger)
    assert event["status"] == "inconclusive" and event["verdict"] == "INCONCLUSIVE", event["line"]
    assert reason in event["reason"], event["reason"]
    assert event["line"].startswith("Give up at 25 %: step timeout") and reason in event["line"]
    assert event["polls"] >= 2, event  # held poll after poll, never promoted
    if kind != "NaN":  # NaN is "no data": the judge still sees the other measures
        assert event["measurements"] == {}
    [(seen, _)] = trigger._reflex_rollback.calls
    assert seen["status"] == "inconclusive" and "traffic_restored_at" in event


def test_an_unexpected_error_still_ends_the_gate_failed_after_the_reflex_rollback(answers):
    class BrokenSource:
        def query_optional(self, promql):
            raise KeyError("labels")  # not a Prometheus error: a bug, not a measurement

    trigger = gate(BrokenSource(), step_timeout=40)
    event = run(trigger)
    assert event["status"] == "failed" and event["verdict"] == "INCONCLUSIVE"
    assert event["line"] == ("Halt at 25 %: the gate itself failed, so green is not judged: KeyError: 'labels'"
                             " — runbook: docs/runbooks/incident-response.md#the-gate-itself-failed")
    assert len(trigger._reflex_rollback.calls) == 1 and "traffic_restored_at" in event


def test_an_unreadable_plan_still_rolls_back_with_the_plan_s_flag_store(prometheus, answers):
    plan = {**PLAN, "flag_backend": "unleash", "poll_interval_seconds": 0.01}  # below the schema's 0.2
    trigger = gate(prometheus(answers.healthy()), plan=plan)
    event = run(trigger)
    assert event["status"] == "failed" and "poll_interval_seconds" in event["reason"]
    assert [backend for _, backend in trigger._reflex_rollback.calls] == ["unleash"]


def test_a_reflex_rollback_that_raises_still_yields_the_halt(prometheus, answers):
    trigger = gate(prometheus(answers.healthy(green_errors="100")), reflex=Reflex(raises=RuntimeError("router gone")), step_timeout=40)
    event = run(trigger)
    assert event["status"] == "failed" and event["reflex_error"] == "RuntimeError: router gone"


def test_the_seams_are_not_serialized():
    trigger = gate(object())
    _, kwargs = trigger.serialize()
    assert not {"_metrics_source", "_read_emergency_stop", "_reflex_rollback", "_write_heartbeat", "_read_heartbeat"} & set(kwargs)
    assert SLOGateTrigger(**kwargs).serialize() == trigger.serialize()


# --- Heartbeat and restart (the dead-man's switch, cutover_kit.dead_man) ---------------------------

RUN_ID = "manual__2026-12-07T19:00:00+00:00"


class State:
    """Stands in for the shared cutover state: what the gate read at start, what it wrote per poll."""

    def __init__(self, saved: GateHeartbeat | None = None, write_fails: bool = False) -> None:
        self.saved, self.write_fails = saved, write_fails
        self.beats: list[GateHeartbeat] = []

    def write(self, heartbeat: GateHeartbeat) -> None:
        if self.write_fails:
            raise CutoverStateError("cutover state (redis_default) unavailable while writing the gate heartbeat")
        self.beats.append(heartbeat)

    def read(self) -> GateHeartbeat | None:
        return self.saved


def watched(trigger: SLOGateTrigger, state: State) -> SLOGateTrigger:
    trigger.dag_id, trigger.run_id, trigger.green_percent = "cutover", RUN_ID, 25.0
    trigger._write_heartbeat = state.write
    trigger._read_heartbeat = state.read
    return trigger


def saved_by(trigger: SLOGateTrigger, *, written_ago: float, decision: GateDecision = GateDecision.CONTINUE,
             **progress) -> GateHeartbeat:
    """What this very gate persisted `written_ago` seconds ago, before its trigger restarted."""
    return GateHeartbeat.of(
        dag_id="cutover", run_id=RUN_ID, step=trigger.step_label, gate_started_at=trigger.gate_started_at,
        at=time.time() - written_ago, poll_interval=0.2, green_percent=25.0, verdict="FAIL", decision=decision,
        line="Halt at 25 %: green 5xx 10.0 % > 1.0 % (2 breaches in a row)", flag_backend="file",
        progress=GateProgress(**progress))


def test_every_poll_writes_a_heartbeat_and_the_end_is_marked(prometheus, answers):
    state = State()
    trigger = watched(gate(prometheus(answers.healthy()), healthy_before=3.0, step_timeout=40), state)
    event = run(trigger)
    assert event["status"] == "success"
    assert len(state.beats) == event["polls"] >= 1
    last = state.beats[-1]
    assert (last.dag_id, last.run_id, last.step, last.gate_started_at) == ("cutover", RUN_ID, "25 %", trigger.gate_started_at)
    assert last.ended and last.decision == "success" and last.line == event["line"]
    assert last.green_percent == 25.0 and last.poll_interval == 0.2 and last.flag_backend == PLAN["flag_backend"]
    assert last.gate_progress.polls == event["polls"] and abs(last.at - event["decided_at"]) < 1


def test_a_halt_is_marked_ended_before_the_reflex_rollback_runs(prometheus, answers):
    state = State()
    trigger = watched(gate(prometheus(answers.healthy(green_errors="100")), step_timeout=40), state)
    event = run(trigger)
    assert [beat.decision for beat in state.beats] == ["continue", "failed"] and event["status"] == "failed"
    assert state.beats[-1].gate_progress.consecutive_breaches == 2


def test_a_restarted_trigger_keeps_a_pending_breach(prometheus, answers):
    """One breach was judged before the restart: the next breach halts (a fresh gate would need two)."""
    state = State()
    trigger = watched(gate(prometheus(answers.healthy(green_errors="100")), step_timeout=40), state)
    state.saved = saved_by(trigger, written_ago=0.5, polls=1, consecutive_breaches=1, fails=1)
    event = run(trigger)
    assert event["status"] == "failed" and event["polls"] == 2  # the saved poll + one after the restart
    assert len(state.beats) == 1 and state.beats[0].gate_progress.fails == 2


def test_a_restarted_trigger_credits_only_the_window_it_judges_not_its_downtime(prometheus, answers):
    """Gate started 60 s ago, 5 s healthy judged before a 50 s outage. The first PASS after the restart
    judges the last window_seconds (10 s) and credits those, never the 55 s since its last poll: a
    bake of 20 s must not promote at once."""
    state = State()
    trigger = watched(gate(prometheus(answers.healthy()), healthy_before=60.0, step_timeout=0.5), state)
    trigger.bake_seconds = 20
    state.saved = saved_by(trigger, written_ago=50, polls=3, passes=3, healthy_seconds=5.0, last_elapsed_seconds=5.0)
    event = run(trigger)
    assert event["status"] == "inconclusive", event["line"]  # no promotion on time nobody judged
    first, last = state.beats[0].gate_progress, state.beats[-1].gate_progress
    assert first.polls == 4 and 15.0 <= first.healthy_seconds < 15.5  # 5 s saved + the 10 s window
    assert last.healthy_seconds < 20


@pytest.mark.parametrize("why", ["stale", "another gate", "unreadable"])
def test_a_heartbeat_that_is_not_this_gate_s_recent_progress_starts_from_zero(prometheus, answers, why):
    state = State()
    trigger = watched(gate(prometheus(answers.healthy(green_errors="100")), step_timeout=40), state)
    if why == "stale":
        state.saved = saved_by(trigger, written_ago=3600, polls=1, consecutive_breaches=1, fails=1)
    elif why == "another gate":  # the same step's earlier attempt (a cleared task defers anew)
        earlier = saved_by(trigger, written_ago=1, polls=1, consecutive_breaches=1, fails=1)
        state.saved = GateHeartbeat.from_json(earlier.to_json().replace(repr(trigger.gate_started_at), "1.0"))
        assert state.saved.gate_started_at == 1.0
    else:
        def unreadable():
            raise CutoverStateError("gate heartbeat is unreadable")
        state.read = unreadable
    event = run(trigger)
    assert event["status"] == "failed" and event["polls"] == PLAN["consecutive_breaches"]  # two fresh breaches


def test_a_gate_that_decided_before_its_restart_delivers_that_decision_again_without_rejudging(answers):
    class Untouchable:
        def query_optional(self, promql):
            raise AssertionError("a decided gate must not measure again")

    state = State()
    trigger = watched(gate(Untouchable(), step_timeout=40), state)
    state.saved = saved_by(trigger, written_ago=2, decision=GateDecision.HALT, polls=2, consecutive_breaches=2, fails=2)
    event = run(trigger)
    assert event["status"] == "failed" and event["resumed"] is True and event["polls"] == 2
    assert event["line"] == "Halt at 25 %: green 5xx 10.0 % > 1.0 % (2 breaches in a row) (decided before the trigger restarted)"
    assert len(trigger._reflex_rollback.calls) == 1  # the idempotent reflex runs again


def test_a_heartbeat_that_cannot_be_written_never_stops_the_gate(prometheus, answers):
    trigger = watched(gate(prometheus(answers.healthy()), healthy_before=3.0, step_timeout=40), State(write_fails=True))
    assert run(trigger)["status"] == "success"


def test_an_unverified_reflex_rollback_is_reported_in_the_event(prometheus, answers):
    def refused(event, flag_backend):
        event["traffic_restore_error"] = "router not set back to blue after 34 attempt(s) in 60.0 s (deadline 60 s)"
    trigger = gate(prometheus(answers.healthy(green_errors="100")), reflex=refused, step_timeout=40)
    event = run(trigger)
    assert event["status"] == "failed"
    assert event["reflex_error"].startswith("traffic NOT back on blue (router not set back to blue after 34 attempt(s)")


# --------------------------------------------------------------------------- the integrity probe

from cutover_kit.db.integrity_probe import IntegrityProbeError  # noqa: E402
from cutover_kit.integrity import Disagreement, IntegritySnapshot  # noqa: E402

WATERMARKS = {"orders": 4700, "line_items": 9000, "users": 300}


def snapshot(*, disagreements=(), acknowledged=12, missing=()):
    return IntegritySnapshot(watermarks=WATERMARKS, rows_checked={"orders": 20, "line_items": 40, "users": 2},
                             disagreements=disagreements, acknowledged=acknowledged, missing=missing, seconds=0.004)


class FakeProbe:
    """Answers one snapshot (or raises one error) per poll; the last answer repeats."""

    def __init__(self, *answers):
        self.answers, self.reads, self.closed = list(answers), 0, False

    def read(self):
        answer = self.answers[min(self.reads, len(self.answers) - 1)]
        self.reads += 1
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self):
        self.closed = True


def probed(trigger, probe):
    trigger.postgres_conn_id = "postgres_default"
    trigger._integrity_probe = lambda: probe
    return trigger


CORRUPT = Disagreement("orders", 4711, {"amount_cents": 1999, "amount": "29.99", "status": "pending", "status_v2": "pending"})


def test_a_corrupted_write_halts_at_once_naming_table_column_and_row(prometheus, answers):
    probe = FakeProbe(snapshot(), snapshot(disagreements=[CORRUPT]))
    trigger = probed(gate(prometheus(answers.healthy()), step_timeout=40), probe)
    event = run(trigger)
    # Poll 1 healthy, poll 2 corrupt: halted on the first violation, not after consecutive_breaches (2).
    assert event["status"] == "failed" and event["verdict"] == "FAIL" and event["polls"] == 2
    assert event["line"].startswith(
        "Halt at 25 %: data: orders id 4711 amount_cents 1999 != amount 29.99 (old vs new column"), event["line"]
    assert event["integrity"]["intact"] is False and event["integrity"]["seconds"] == 0.004
    assert len(trigger._reflex_rollback.calls) == 1 and "traffic_restored_at" in event
    assert probe.closed


def test_a_missing_acknowledged_write_halts_at_once(prometheus, answers):
    probe = FakeProbe(snapshot(missing=[4712, 4720]))
    trigger = probed(gate(prometheus(answers.healthy()), healthy_before=3.0, step_timeout=40), probe)
    event = run(trigger)
    assert event["status"] == "failed" and event["polls"] == 1  # even a step already baked never promotes
    assert "data: orders id 4712 acknowledged to a client but not in the database (2 of 12" in event["line"]
    assert len(trigger._reflex_rollback.calls) == 1


def test_intact_data_lets_the_slos_decide_and_the_line_says_what_was_checked(prometheus, answers):
    probe = FakeProbe(snapshot(acknowledged=None))
    trigger = probed(gate(prometheus(answers.healthy()), healthy_before=3.0, step_timeout=40), probe)
    event = run(trigger)
    assert event["status"] == "success", event["line"]
    assert "no acknowledged-writes ledger configured, so agreement only" in event["line"]
    assert event["integrity"]["acknowledged"] is None and trigger._reflex_rollback.calls == []


def test_an_slo_breach_still_needs_its_consecutive_breaches_when_the_data_is_intact(prometheus, answers):
    trigger = probed(gate(prometheus(answers.healthy(green_errors="100")), step_timeout=40), FakeProbe(snapshot()))
    event = run(trigger)
    assert event["status"] == "failed" and event["polls"] == PLAN["consecutive_breaches"]
    assert event["line"].startswith("Halt at 25 %: green 5xx 10.0 % > 1.0 %") and "all present" in event["line"]


def test_an_unreadable_database_never_promotes(prometheus, answers):
    probe = FakeProbe(IntegrityProbeError("cannot connect to the database: connection refused"))
    trigger = probed(gate(prometheus(answers.healthy()), healthy_before=3.0), probe)
    event = run(trigger)
    assert event["status"] == "inconclusive" and event["verdict"] == "INCONCLUSIVE"
    assert "integrity probe could not read the database: cannot connect" in event["reason"]
    assert len(trigger._reflex_rollback.calls) == 1


def test_without_a_database_connection_no_probe_runs(prometheus, answers):
    trigger = gate(prometheus(answers.healthy()), healthy_before=3.0, step_timeout=40)
    trigger._integrity_probe = lambda: pytest.fail("no postgres_conn_id: the probe must not be built")
    event = run(trigger)
    assert event["status"] == "success" and "integrity" not in event


# --- Error tracking (cutover_kit.error_tracking) ----------------------------------------------------


class Tracker:
    """Stands in for the ErrorTrackingHook: per color, the exception types it answers (or raises)."""

    def __init__(self, green: dict[str, int], blue: dict[str, int], fails: Exception | None = None) -> None:
        self.answers, self.fails, self.asked = {"green": green, "blue": blue}, fails, []

    def exception_types(self, color: str, since: float, until: float | None = None) -> dict[str, int]:
        self.asked.append((color, since, until))
        if self.fails:
            raise self.fails
        return self.answers[color]


def tracked(trigger: SLOGateTrigger, tracker: Tracker, run_started_at: float) -> SLOGateTrigger:
    trigger.error_tracking_conn_id, trigger.run_started_at = "error_tracking_default", run_started_at
    trigger._error_tracker = lambda: tracker
    return trigger


def test_a_new_exception_type_is_reported_per_poll_and_does_not_fail_by_default(prometheus, answers):
    tracker = Tracker(green={"TypeError": 5, "InjectedFaultError": 4}, blue={"Cutover::InjectedFaultError": 1})
    trigger = tracked(gate(prometheus(answers.healthy()), healthy_before=3.0, step_timeout=40), tracker, run_started_at=100.0)
    event = run(trigger)
    assert event["status"] == "success", event["line"]
    assert "new exception types on green that blue has not raised this run: TypeError x5; reported only" in event["line"]
    assert event["measurements"]["error_tracking"]["new_types"] == {"TypeError": 5}
    (green_color, green_since, green_until), (blue_color, blue_since, _) = tracker.asked[:2]
    assert (green_color, blue_color, blue_since) == ("green", "blue", 100.0)  # blue: since the run began
    assert green_until - green_since <= PLAN["window_seconds"]  # green: the judging window only


def test_a_plan_that_fails_on_new_types_halts_naming_them(prometheus, answers):
    plan = {**PLAN, "error_tracking": {"fail_on_new_exception_types": True, "min_events": 3}}
    trigger = tracked(gate(prometheus(answers.healthy()), plan=plan, step_timeout=40), Tracker({"TypeError": 3}, {}), 0.0)
    event = run(trigger)
    assert event["status"] == "failed" and event["verdict"] == "FAIL"
    assert "TypeError x3; FAIL (plan: fail_on_new_exception_types)" in event["line"]
    assert len(trigger._reflex_rollback.calls) == 1


def test_an_unreadable_tracker_never_promotes_a_plan_that_fails_on_new_types(prometheus, answers):
    plan = {**PLAN, "error_tracking": {"fail_on_new_exception_types": True}}
    tracker = Tracker({}, {}, fails=ConnectionError("receiver down"))
    event = run(tracked(gate(prometheus(answers.healthy()), plan=plan, healthy_before=3.0), tracker, 0.0))
    assert event["status"] == "inconclusive" and "error tracking unreadable: ConnectionError: receiver down" in event["reason"]
    report_only = run(tracked(gate(prometheus(answers.healthy()), healthy_before=3.0, step_timeout=40),
                              Tracker({}, {}, fails=ConnectionError("receiver down")), 0.0))
    assert report_only["status"] == "success" and "error tracking unreadable" in report_only["line"]
