"""The dead-man's switch, pure: the heartbeat record, the silence limit, which persisted progress a
restarted trigger may resume, and the watchdog's decision in every case it must tell apart."""

from __future__ import annotations

import pytest

from cutover_kit.control import CutoverStateError
from cutover_kit.dead_man import (
    GATE_START_ALLOWANCE_SECONDS, ROLLBACK_GRACE_SECONDS, GateHeartbeat, judge_gate_silence, progress_record,
    resumable_heartbeat, silence_limit_seconds,
)
from cutover_kit.gate import GateDecision, GateProgress
from cutover_kit.previous_cutover import PROMOTED, ROLLED_BACK, RecordedOutcome

NOW = 1_765_000_000.0
RUN = "manual__2026-12-07T19:00:00+00:00"
STEPPED_AT = NOW - 300  # the 25 % step set its weights five minutes ago


def beat(*, at: float, decision: GateDecision = GateDecision.CONTINUE, step: str = "25 %", run_id: str = RUN,
         gate_started_at: float = STEPPED_AT + 5, poll_interval: float = 1.0, **progress) -> GateHeartbeat:
    return GateHeartbeat.of(dag_id="cutover", run_id=run_id, step=step, gate_started_at=gate_started_at, at=at,
                            poll_interval=poll_interval, green_percent=25.0, verdict="PASS", decision=decision,
                            line=f"Hold at {step}: PASS", flag_backend="unleash", progress=GateProgress(**progress))


def in_step(step: str = "25 %", at: float = STEPPED_AT, run_id: str = RUN) -> dict:
    return {"run_id": run_id, "step": step, "at": at, "dag_id": "cutover"}


def judge(*, green: float = 25.0, progress=None, heartbeat=None, last=None, run_state="running", now=NOW):
    return judge_gate_silence(now=now, green_percent=green, progress=progress, heartbeat=heartbeat,
                              last_outcome=last, run_state=run_state)


# --- the heartbeat record ---------------------------------------------------------------------------

def test_a_heartbeat_round_trips_and_carries_its_progress():
    original = beat(at=NOW, polls=7, consecutive_breaches=1, healthy_seconds=4.5, last_elapsed_seconds=12.0)
    again = GateHeartbeat.from_json(original.to_json())
    assert again == original and not again.ended
    assert again.gate_progress == GateProgress(polls=7, consecutive_breaches=1, healthy_seconds=4.5, last_elapsed_seconds=12.0)
    assert beat(at=NOW, decision=GateDecision.HALT).ended and beat(at=NOW, decision=GateDecision.PROMOTE).ended


@pytest.mark.parametrize("raw", ["not json", "{}", '{"dag_id": "cutover"}',
                                 beat(at=NOW).to_json().replace('"continue"', '"maybe"'),
                                 beat(at=NOW).to_json().replace('"polls": 0', '"polls": "many"'),
                                 beat(at=NOW).to_json().replace('"poll_interval": 1.0', '"poll_interval": 0')])
def test_an_unreadable_heartbeat_is_a_state_error_naming_it(raw):
    with pytest.raises(CutoverStateError, match="gate heartbeat is unreadable"):
        GateHeartbeat.from_json(raw)


def test_the_silence_limit_is_three_polls_and_a_margin():
    assert silence_limit_seconds(1.0) == 13.0 and silence_limit_seconds(5.0) == 25.0


def test_a_progress_record_is_checked():
    assert progress_record(None) is None
    assert progress_record({"run_id": RUN, "step": "5 %", "at": "12.5"}) == {"run_id": RUN, "step": "5 %", "at": 12.5}
    for bad in ({"run_id": RUN, "step": "5 %"}, {"run_id": RUN, "step": "5 %", "at": "soon"}, "text",
                {"run_id": RUN, "step": "5 %", "at": float("nan")}):
        with pytest.raises(CutoverStateError, match="progress record"):
            progress_record(bad)


# --- what a restarted trigger may resume ------------------------------------------------------------

def resume(heartbeat, *, step="25 %", gate_started_at=STEPPED_AT + 5, now=NOW):
    return resumable_heartbeat(heartbeat, dag_id="cutover", run_id=RUN, step=step, gate_started_at=gate_started_at, now=now)


def test_a_restarted_trigger_resumes_its_own_recent_progress():
    saved = beat(at=NOW - 3, polls=9, consecutive_breaches=1, healthy_seconds=6.0)
    found, line = resume(saved)
    assert found == saved
    assert line == (f"Gate of cutover/{RUN} at 25 % resumes its persisted progress written 3.0 s ago: 9 polls, "
                    "1 breach(es) in a row, 6 s healthy")


@pytest.mark.parametrize("case, expected", [
    ("none", "no persisted progress"),
    ("another step", "belongs to another gate (gate of cutover/"),
    ("another deferral", "belongs to another gate"),
    ("another run", "belongs to another gate"),
    ("stale", "is 200 s old (resumed only within 130 s)"),
    ("future", "is -30 s old"),
])
def test_anything_but_this_gate_s_recent_progress_starts_from_zero(case, expected):
    saved = {
        "none": None,
        "another step": beat(at=NOW - 1, step="5 %"),
        "another deferral": beat(at=NOW - 1, gate_started_at=STEPPED_AT + 60),  # the task was cleared and ran again
        "another run": beat(at=NOW - 1, run_id="manual__earlier"),
        "stale": beat(at=NOW - 200),
        "future": beat(at=NOW + 30),
    }[case]
    found, line = resume(saved)
    assert found is None and line.startswith(f"Gate of cutover/{RUN} at 25 % starts from zero: ") and expected in line


def test_an_ended_gate_is_resumed_to_deliver_its_decision():
    found, line = resume(beat(at=NOW - 2, decision=GateDecision.HALT, polls=2, consecutive_breaches=2))
    assert found is not None and found.ended and line.endswith("; it had already decided: Hold at 25 %: PASS")


# --- the watchdog's decision ------------------------------------------------------------------------

def test_fires_when_the_gate_is_silent_past_its_limit_with_green_on_traffic():
    decision = judge(progress=in_step(), heartbeat=beat(at=NOW - 47))
    assert decision.roll_back and decision.flag_backend == "unleash"
    assert decision.line == (f"Dead-man: gate of cutover/{RUN} silent for 47 s (limit 13 s) at 25 %; "
                             "flags -> Rails, traffic -> blue")


def test_a_gate_that_polled_within_its_limit_is_alive():
    decision = judge(progress=in_step(), heartbeat=beat(at=NOW - 12.9))
    assert not decision.roll_back and decision.line.startswith(f"Gate of cutover/{RUN} at 25 % alive: last poll 12.9 s ago")


def test_a_slow_polling_plan_gets_a_longer_limit():
    assert not judge(progress=in_step(), heartbeat=beat(at=NOW - 20, poll_interval=5.0)).roll_back
    assert judge(progress=in_step(), heartbeat=beat(at=NOW - 26, poll_interval=5.0)).roll_back


def test_fires_when_a_step_s_gate_never_reported():
    """The 25 % step set its weights; the heartbeat is still the 5 % gate's (ended, promoted)."""
    previous_gate = beat(at=STEPPED_AT - 2, decision=GateDecision.PROMOTE, step="5 %", gate_started_at=STEPPED_AT - 100)
    waiting = judge(progress=in_step(), heartbeat=previous_gate, now=STEPPED_AT + GATE_START_ALLOWANCE_SECONDS - 1)
    assert not waiting.roll_back and "its gate has not reported yet (allowed 120 s)" in waiting.line
    decision = judge(progress=in_step(), heartbeat=previous_gate)
    assert decision.roll_back and decision.flag_backend is None  # no heartbeat of this step names the store
    assert decision.line == (f"Dead-man: cutover cutover/{RUN} set green to 25 % 300 s ago and its gate never reported "
                             "(limit 120 s) at 25 %; flags -> Rails, traffic -> blue")
    assert judge(progress=in_step(), heartbeat=None).roll_back  # no heartbeat at all: the same rule


def test_does_not_fire_without_traffic_on_green():
    decision = judge(green=0.0, progress=in_step(), heartbeat=beat(at=NOW - 600))
    assert not decision.roll_back and decision.line == "Green gets 0 % of traffic: no gate to watch"


def test_does_not_fire_when_no_cutover_runs():
    decision = judge(green=100.0, progress=None, heartbeat=None)
    assert not decision.roll_back and "no cutover has recorded progress" in decision.line


def test_a_promoted_run_at_100_percent_with_no_gate_is_normal():
    standby = beat(at=NOW - 3600, decision=GateDecision.PROMOTE, step="100 % standby", gate_started_at=STEPPED_AT + 10)
    progress = in_step("100 %")
    promoted = RecordedOutcome(PROMOTED, RUN, "cutover", NOW - 3590, "Promoted: 100 % green")
    assert not judge(green=100.0, progress=progress, heartbeat=standby, last=promoted).roll_back
    # Between the standby gate's promotion and the promote task, the ended heartbeat alone says so.
    decision = judge(green=100.0, progress=progress, heartbeat=standby, last=None)
    assert not decision.roll_back and "promoted 3600 s ago: the run moves on" in decision.line


def test_an_ended_run_is_never_rolled_back_by_the_watchdog():
    silent = beat(at=NOW - 600)  # left behind by a run whose triggerer died, then ended (timeout, verdict)
    finished = judge(progress=in_step(), heartbeat=silent, run_state="failed")
    assert not finished.roll_back and finished.line == f"Cutover cutover/{RUN} is failed in this Airflow, not running: its gates are over (green at 25 %)"
    rolled_back = RecordedOutcome(ROLLED_BACK, "scheduled__x", "emergency_rollback", NOW - 60, "emergency rollback: x")
    assert not judge(progress=in_step(), heartbeat=silent, last=rolled_back).roll_back  # newer than the step
    older = RecordedOutcome(ROLLED_BACK, "manual__earlier", "cutover", STEPPED_AT - 3600, "an earlier run")
    assert judge(progress=in_step(), heartbeat=silent, last=older).roll_back  # an earlier run's outcome says nothing
    assert judge(progress=in_step(), heartbeat=silent, run_state=None).roll_back  # unknown state: treated as running


def test_a_halted_gate_gets_its_rollback_s_time_then_the_watchdog_repeats_it():
    halted = beat(at=NOW - 30, decision=GateDecision.HALT)
    assert not judge(progress=in_step(), heartbeat=halted).roll_back
    late = beat(at=NOW - ROLLBACK_GRACE_SECONDS - 1, decision=GateDecision.TIMEOUT)
    decision = judge(progress=in_step(), heartbeat=late)
    assert decision.roll_back and decision.line.startswith(
        f"Dead-man: gate of cutover/{RUN} decided inconclusive at 25 % 91 s ago but green still gets 25 %")


def test_the_standby_watch_counts_as_the_100_percent_step_s_gate():
    standby = beat(at=NOW - 2, step="100 % standby", gate_started_at=STEPPED_AT + 40)
    assert not judge(green=100.0, progress=in_step("100 %"), heartbeat=standby).roll_back
    assert judge(green=100.0, progress=in_step("100 %"), heartbeat=beat(at=NOW - 40, step="100 % standby",
                                                                        gate_started_at=STEPPED_AT + 40)).roll_back


def test_a_heartbeat_alone_is_enough_when_progress_was_not_recorded():
    """Progress is written best effort; the heartbeat names the run and the step by itself."""
    assert judge(progress=None, heartbeat=beat(at=NOW - 47)).roll_back
    assert not judge(progress=None, heartbeat=beat(at=NOW - 2)).roll_back
