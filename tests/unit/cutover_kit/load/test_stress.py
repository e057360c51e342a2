"""The stress and recovery phase: the profile's phases and their Locust variables, the history
split into steps / stress / recovery seconds (on a run recorded against the sandbox's stage
green: 2 and 4 users for 3 s each, 24 users for 3 s, then 2 users for 5 s), the failure mode, the
recovery verdict, and the rule that green not recovering while blue does halts the stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover_kit.load.capacity import HALT, PASS, CapacityPlan, load_test_summary
from cutover_kit.load.history import HistoryError, SecondFigures, StepFigures, parse_run_figures, parse_step_figures
from cutover_kit.load.knee import Knee, LoadSLO, find_knee
from cutover_kit.load.profile import LoadProfile, ProfileError, Step, StressPhase, parse_stress
from cutover_kit.load.stress import (
    BOTH, ERRORS, HELD, LATENCY, NO_DATA, classify_failure, judge_recovery, recovery_halt, stress_block,
)

DATA = Path(__file__).parent / "data"
SLO = LoadSLO(max_p95_ms=500, max_error_ratio=0.01)
STRESS = StressPhase(users=24, seconds=3, recovery_users=2, recovery_seconds=5)


def recorded_green():
    return parse_run_figures((DATA / "green_stress_stats_history.csv").read_text(), 3, 2, 3, 5)


def stress_step(p95: float | None, failures: int = 0, requests: int = 400, users: int = 48, rate: float = 130.0) -> StepFigures:
    return StepFigures(4, users, 4, requests, failures, rate, failures / requests if requests else None, p95, p95, p95)


def second(offset: int, p95: float | None, failures: int = 0, requests: int = 40, users: int = 2) -> SecondFigures:
    return SecondFigures(offset, users, requests, failures, failures / requests if requests else None, p95)


# --- profile ------------------------------------------------------------------------------------

def test_the_stress_phase_follows_the_steps_and_round_trips_through_locusts_environment():
    profile = LoadProfile("http://127.0.0.1:18084", (Step(2, 2), Step(4, 4)), 3, 5000, stress=STRESS)
    assert LoadProfile.from_env(profile.to_env()) == profile
    assert profile.to_env()["LOAD_STRESS"] == "24:3:2:5"
    assert (profile.steps_seconds, profile.duration_seconds) == (6, 14)
    assert [profile.phase_at(t) for t in (0, 3.5, 6, 8.9, 9, 13.9, 14)] == [
        ("step", 2, 2.0), ("step", 4, 4.0), ("stress", 24, 24.0), ("stress", 24, 24.0),
        ("recovery", 2, 24.0), ("recovery", 2, 24.0), None]
    plain = LoadProfile("http://127.0.0.1:18084", (Step(2, 2),), 3, 5000)
    assert plain.to_env()["LOAD_STRESS"] == "" and LoadProfile.from_env(plain.to_env()).stress is None
    assert plain.phase_at(3) is None


@pytest.mark.parametrize("stress, field", [
    (StressPhase(4, 3, 2, 5), "stress.users must be above the last step's 4 users"),
    (StressPhase(24, 0, 2, 5), "stress.seconds"),
    (StressPhase(24, 3, 24, 5), "stress.recovery_users"),
    (StressPhase(24, 3, 2, 2), "stress.recovery_seconds must be 3-300"),
])
def test_a_stress_phase_that_cannot_show_anything_is_refused_by_field(stress, field):
    with pytest.raises(ProfileError, match=field):
        LoadProfile("http://127.0.0.1:18084", (Step(2, 2), Step(4, 4)), 3, 5000, stress=stress)
    with pytest.raises(ProfileError, match="LOAD_STRESS"):
        parse_stress("24:3")


# --- history ------------------------------------------------------------------------------------

def test_the_recorded_run_splits_into_steps_stress_and_recovery_seconds():
    figures = recorded_green()
    assert [(s.users, s.requests) for s in figures.steps] == [(2, 100), (4, 215)]
    assert figures.stress == StepFigures(2, 24, 3, 1050, 0, 350.0, 0.0, 14.0, 41.0, 62.0)
    assert [(s.offset_seconds, s.users, s.requests, s.p95_ms) for s in figures.recovery] == [
        (1, 2, 42, 38.0), (2, 2, 38, 9.0), (3, 2, 37, 10.0), (4, 2, 36, 7.0), (5, 2, 35, 19.0)]
    assert figures.start_epoch == 1796684079
    # Without the stress phase the same file is read as before: the tail counts in the last step.
    assert parse_step_figures((DATA / "green_stress_stats_history.csv").read_text(), 3, 2)[-1].requests == 1553 - 100


def test_a_stress_phase_needs_both_durations():
    with pytest.raises(HistoryError, match="stress_seconds and recovery_seconds"):
        parse_run_figures((DATA / "green_stress_stats_history.csv").read_text(), 3, 2, 3, None)


# --- failure mode -------------------------------------------------------------------------------

def test_the_recorded_green_held_under_stress_and_recovered_at_once():
    figures = recorded_green()
    knee = find_knee(figures.steps, SLO)
    outcome = classify_failure(figures.stress, SLO, knee)
    assert outcome.failure_mode == HELD
    assert outcome.description == ("held: p95 41 ms at 24 users, errors 0.0 %, 350 rps (knee 71.667 rps), within the SLO"
                                   " (p95 <= 500 ms, errors <= 1.0%)")
    recovery = judge_recovery(figures.recovery, SLO)
    assert recovery.recovered and recovery.recovery_seconds == 1
    assert recovery.description == "recovered within 1 s at 2 users (last second p95 19 ms, errors 0.0 %)"


@pytest.mark.parametrize("step, mode, text", [
    (stress_step(840, failures=1, requests=500), LATENCY, "latency: p95 840 ms at 48 users, errors 0.2 %, 130 rps"),
    (stress_step(120, failures=40), ERRORS, "errors: p95 120 ms at 48 users, errors 10.0 %, 130 rps"),
    (stress_step(5000, failures=40), BOTH, "errors and latency: p95 5000 ms at 48 users, errors 10.0 %"),
    (stress_step(500, failures=4), HELD, "held: p95 500 ms"),  # at the SLO is within it
    (stress_step(None, requests=0), NO_DATA, "no data: no request completed during the stress step at 48 users"),
    (None, NO_DATA, "no data: no request completed during the stress step (the app hung"),
])
def test_the_failure_mode_names_what_broke_first(step, mode, text):
    outcome = classify_failure(step, SLO)
    assert outcome.failure_mode == mode and outcome.description.startswith(text)


def test_the_failure_line_compares_with_the_knee():
    knee = Knee(140.0, 3, 200.0, 0.0, True, "knee")
    assert classify_failure(stress_step(840), SLO, knee).description.endswith("130 rps (knee 140 rps)")


# --- recovery -----------------------------------------------------------------------------------

def test_recovery_time_is_the_start_of_the_final_good_stretch():
    seconds = [second(1, 3000, failures=5), second(2, 900), second(3, 400), second(4, 30), second(5, 20)]
    recovery = judge_recovery(seconds, SLO)
    assert recovery.recovered and recovery.recovery_seconds == 3


def test_a_good_second_between_bad_ones_is_not_a_recovery():
    seconds = [second(1, 3000), second(2, 100), second(3, 900), second(4, 30)]
    recovery = judge_recovery(seconds, SLO)
    assert not recovery.recovered and recovery.recovery_seconds is None
    assert recovery.description.startswith("not recovered after 4 s at 2 users (last second: p95 30 ms")


def test_seconds_without_a_completed_request_are_not_good():
    hung = [second(1, None, requests=0), second(2, None, requests=0), second(3, None, requests=0)]
    recovery = judge_recovery(hung, SLO)
    assert not recovery.recovered and "last second: no request completed" in recovery.description
    erroring = [second(1, 20, failures=10), second(2, 20, failures=10), second(3, 20, failures=10)]
    assert not judge_recovery(erroring, SLO).recovered
    assert judge_recovery([], SLO).description == "not recovered: no second of the recovery phase was recorded"


# --- the halt rule ------------------------------------------------------------------------------

def block(recovered: bool, measured: bool = True) -> dict:
    seconds = [second(1, 20), second(2, 20)] if recovered else ([second(1, 3000), second(2, 3000)] if measured else [])
    return stress_block(classify_failure(stress_step(840), SLO), judge_recovery(seconds, SLO))


def test_green_not_recovering_while_blue_does_halts_and_neither_recovering_does_not():
    assert recovery_halt({"blue": block(True), "green": block(True)}) is None
    assert recovery_halt({"blue": block(False), "green": block(True)}) is None
    reason = recovery_halt({"blue": block(True), "green": block(False)})
    assert reason.startswith("Halt before traffic: green did not recover from stress (latency: p95 840 ms")
    assert "blue recovered within" in reason
    assert recovery_halt({"blue": block(False), "green": block(False)}) is None
    assert "blue has no recovery figures" in recovery_halt({"blue": block(False, measured=False), "green": block(False)})
    not_measured = stress_block(classify_failure(None, SLO), judge_recovery([], SLO, capped_at=8000))
    assert not_measured["recovered"] is None
    assert recovery_halt({"blue": block(True), "green": not_measured}) == (
        "Halt before traffic: green's recovery from stress was not measured: the request cap (8000) ended the run before"
        " the recovery phase; raise load_test.max_requests")
    assert recovery_halt({"blue": not_measured, "green": block(True)}) is None


def steps(rates):
    return [StepFigures(i, 2 ** i, 4, 100, 0, rate, 0.0, 20.0, 30.0, 40.0) for i, rate in enumerate(rates)]


def test_the_summary_adds_stress_fields_per_color_and_the_recovery_halt_after_capacity():
    plan = CapacityPlan(peak_rps=10, headroom=2)
    knees = {c: find_knee(steps([25, 50, 100]), SLO) for c in ("blue", "green")}
    runs = {c: steps([25, 50, 100]) for c in ("blue", "green")}
    passing = load_test_summary(runs, knees, plan, {"blue": block(True), "green": block(True)})
    assert passing["verdict"] == PASS
    assert passing["green"]["recovered"] is True and passing["green"]["recovery_seconds"] == 1
    assert passing["green"]["stress"]["failure_mode"] == LATENCY and passing["green"]["knee_rps"] == 100
    halted = load_test_summary(runs, knees, plan, {"blue": block(True), "green": block(False)})
    assert halted["verdict"] == HALT and halted["reason"].startswith("Halt before traffic: green did not recover")
    both = load_test_summary(runs, knees, plan, {"blue": block(False), "green": block(False)})
    assert both["verdict"] == PASS and both["stress_finding"].startswith("neither color recovered from stress")
    # A capacity halt keeps its own reason: it is the first rule that failed.
    slow_green = {**knees, "green": find_knee(steps([5, 8]), SLO)}
    first = load_test_summary({**runs, "green": steps([5, 8])}, slow_green, plan, {"blue": block(True), "green": block(False)})
    assert first["verdict"] == HALT and "green knee 8 rps" in first["reason"]
    assert "stress" not in load_test_summary(runs, knees, plan)["green"]


# --- recorded with the rehearsal plan (4 steps of 4 s, 32 users for 4 s, 2 users for 6 s) ---------

def rehearsal_run(name: str, recovery_seconds: float = 6):
    return parse_run_figures((DATA / name).read_text(), 4, 4, 4, recovery_seconds)


def test_recorded_blue_fails_by_latency_under_stress_and_recovers_in_two_seconds():
    figures = rehearsal_run("blue_stress_stats_history.csv")
    outcome = classify_failure(figures.stress, SLO, find_knee(figures.steps, SLO))
    assert outcome.description == "latency: p95 970 ms at 32 users, errors 0.0 %, 96 rps (knee 173.5 rps)"
    recovery = judge_recovery(figures.recovery, SLO)
    assert (recovery.recovered, recovery.recovery_seconds, recovery.users) == (True, 2, 2)


def test_recorded_undersized_green_fails_by_latency_and_drains_its_queue_before_recovering():
    """green-under-capacity's faults (one request at a time, 100 ms each) on the stage green."""
    figures = rehearsal_run("green_under_capacity_stress_stats_history.csv")
    outcome = classify_failure(figures.stress, SLO, find_knee(figures.steps, SLO))
    assert outcome.description == "latency: p95 2500 ms at 32 users, errors 0.0 %, 7.25 rps (knee 10.25 rps)"
    # Its users leave only as their queued requests finish (32 -> 21 -> 12 -> 3 -> 2 users).
    assert [second.users for second in figures.recovery] == [32, 21, 12, 3, 2, 2]
    recovery = judge_recovery(figures.recovery, SLO)
    assert recovery.description == "recovered within 5 s at 2 users (last second p95 180 ms, errors 0.0 %)"
    # Given only 4 s of recovery it is still draining: not recovered, while blue is back in 2 s:
    # that halts the stage even if green's capacity had passed.
    short = judge_recovery(rehearsal_run("green_under_capacity_stress_stats_history.csv", 4).recovery, SLO)
    assert not short.recovered and short.description.startswith("not recovered after 4 s at 3 users (last second: p95 3200 ms")
    blue = rehearsal_run("blue_stress_stats_history.csv")
    blocks = {"blue": stress_block(classify_failure(blue.stress, SLO), judge_recovery(blue.recovery, SLO)),
              "green": stress_block(outcome, short)}
    assert recovery_halt(blocks).startswith("Halt before traffic: green did not recover from stress (latency: p95 2500 ms")
