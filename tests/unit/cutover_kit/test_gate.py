from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from cutover_kit.change_windows import ChangeWindows
from cutover_kit.gate import (
    GateDecision,
    GateProgress,
    advance_gate,
    decision_line,
    hold_outside_change_windows,
    judging_window_seconds,
)
from cutover_kit.slo import Judgement, Verdict

PASS = Judgement(Verdict.PASS, "ok")
FAIL = Judgement(Verdict.FAIL, "green 5xx 3.2 % > 1.0 % over 10 s, 412 requests")
DOUBT = Judgement(Verdict.INCONCLUSIVE, "only 3 green requests")
TIMING = {"bake_seconds": 10, "step_timeout_seconds": 30, "consecutive_breach_limit": 2}


def run(verdicts, elapsed):
    progress, decision = GateProgress(), GateDecision.CONTINUE
    for judgement, seconds in zip(verdicts, elapsed):
        progress, decision = advance_gate(progress, judgement, seconds, **TIMING)
        if decision is not GateDecision.CONTINUE:
            break
    return progress, decision


def test_halts_after_consecutive_breaches_only():
    assert run([FAIL, PASS, FAIL, PASS], [1, 2, 3, 4])[1] is GateDecision.CONTINUE
    progress, decision = run([PASS, FAIL, FAIL], [1, 2, 3])
    assert decision is GateDecision.HALT and progress.consecutive_breaches == 2


def test_an_unknown_between_two_breaches_does_not_excuse_them():
    progress, decision = run([FAIL, DOUBT, FAIL], [1, 2, 3])
    assert decision is GateDecision.HALT and progress.consecutive_breaches == 2
    # Breach, unknown, breach, unknown ...: halts at the second breach, not at the step timeout.
    assert run([FAIL, DOUBT] * 20, range(1, 41))[0].polls == 3


def test_promotes_only_after_a_bake_of_healthy_verdicts():
    assert run([PASS] * 9, range(1, 10))[1] is GateDecision.CONTINUE
    progress, decision = run([PASS] * 10, range(1, 11))
    assert decision is GateDecision.PROMOTE and progress.healthy_seconds == 10


def test_inconclusive_holds_then_times_out_never_promotes():
    progress, decision = run([DOUBT] * 40, range(1, 41))
    assert decision is GateDecision.TIMEOUT and progress.passes == 0 and progress.healthy_seconds == 0


def test_time_without_data_never_counts_as_baked():
    # Prometheus silent for 12 of the first 13 s: one PASS after it is 1 s of bake, not 13.
    assert run([DOUBT] * 12 + [PASS], range(1, 14))[1] is GateDecision.CONTINUE
    assert run([DOUBT] * 12 + [PASS] * 9, range(1, 22))[1] is GateDecision.CONTINUE
    progress, decision = run([DOUBT] * 12 + [PASS] * 10, range(1, 23))
    assert decision is GateDecision.PROMOTE and progress.healthy_seconds == 10
    # Unknown polls inside the bake do not count either; the healthy ones before them still do.
    progress, decision = run([PASS] * 5 + [DOUBT] * 5 + [PASS] * 5, range(1, 16))
    assert decision is GateDecision.PROMOTE and progress.polls == 15 and progress.healthy_seconds == 10


def test_a_breach_starts_the_bake_again():
    assert run([PASS] * 8 + [FAIL] + [PASS] * 9, range(1, 19))[1] is GateDecision.CONTINUE
    assert run([PASS] * 8 + [FAIL] + [PASS] * 10, range(1, 20))[1] is GateDecision.PROMOTE


def test_window_never_reaches_before_the_step_started():
    assert judging_window_seconds(0.3, 10) == 2
    assert judging_window_seconds(4.2, 10) == 5
    assert judging_window_seconds(60, 10) == 10


def test_decision_line_reads_like_a_sentence():
    line = decision_line(GateDecision.HALT, "25 %", FAIL, GateProgress(polls=3, consecutive_breaches=2))
    assert line == "Halt at 25 %: green 5xx 3.2 % > 1.0 % over 10 s, 412 requests (2 breaches in a row)"


def test_a_restarted_gate_credits_only_the_window_it_judged():
    from cutover_kit.gate import initial_credit_start

    # Fresh start 3 s after the weights: the first window reaches back to the weights, all of it counts.
    assert initial_credit_start(3.2, 10) == 0.0
    # Restarted by the triggerer 200 s into the step: only the 10 s its first window covers.
    start = initial_credit_start(200.0, 10)
    assert start == 190.0
    progress, decision = advance_gate(GateProgress(last_elapsed_seconds=start), PASS, 200.0, bake_seconds=300,
                                      step_timeout_seconds=900, consecutive_breach_limit=2)
    assert decision is GateDecision.CONTINUE and progress.healthy_seconds == 10.0


def test_progress_persists_and_reads_back_and_refuses_a_malformed_record():
    from cutover_kit.gate import progress_from_dict, progress_to_dict

    progress = GateProgress(polls=4, consecutive_breaches=1, passes=2, fails=1, inconclusives=1, healthy_seconds=3.5,
                            last_elapsed_seconds=9.25)
    assert progress_from_dict(progress_to_dict(progress)) == progress
    assert progress_from_dict({**progress_to_dict(progress), "added_by_a_newer_gate": 1}) == progress
    for bad in ([], {"polls": 1}, {**progress_to_dict(progress), "polls": "4"}, {**progress_to_dict(progress), "fails": True},
                {**progress_to_dict(progress), "healthy_seconds": float("inf")}):
        with pytest.raises(ValueError, match="gate progress"):
            progress_from_dict(bad)


def test_resumed_progress_keeps_every_count_and_credits_only_the_next_window():
    from cutover_kit.gate import resumed_progress

    saved = GateProgress(polls=4, consecutive_breaches=1, passes=3, fails=1, healthy_seconds=5.0, last_elapsed_seconds=20.0)
    # Down from 20 s to 80 s of the step: the next PASS judges 30 s back, so credit starts at 50 s.
    later = resumed_progress(saved, elapsed_seconds=80.0, window_seconds=30)
    assert later == GateProgress(polls=4, consecutive_breaches=1, passes=3, fails=1, healthy_seconds=5.0, last_elapsed_seconds=50.0)
    # A short outage inside one window: the window covers it, so nothing is lost either.
    assert resumed_progress(saved, elapsed_seconds=25.0, window_seconds=30).last_elapsed_seconds == 20.0
    progress, decision = advance_gate(later, Judgement(Verdict.PASS, "ok"), 80.0, bake_seconds=60,
                                      step_timeout_seconds=900, consecutive_breach_limit=2)
    assert progress.healthy_seconds == 35.0 and decision is GateDecision.CONTINUE  # 5 + 30, not 5 + 60


# --------------------------------------------------------------------------- change windows

WEEKDAYS = ChangeWindows.from_dict(
    {"timezone": "Europe/Berlin", "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "16:00"}]}
)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Berlin"))


@pytest.mark.parametrize(("decision", "moment", "expected"), [
    (GateDecision.PROMOTE, berlin(2026, 12, 7, 10, 0), GateDecision.PROMOTE),      # inside: advance
    (GateDecision.PROMOTE, berlin(2026, 12, 12, 10, 0), GateDecision.CONTINUE),    # Saturday: hold
    (GateDecision.HALT, berlin(2026, 12, 12, 10, 0), GateDecision.HALT),            # rollback never held
    (GateDecision.TIMEOUT, berlin(2026, 12, 12, 10, 0), GateDecision.TIMEOUT),
    (GateDecision.CONTINUE, berlin(2026, 12, 12, 10, 0), GateDecision.CONTINUE),
])
def test_gate_decisions_with_change_windows(decision: GateDecision, moment: datetime, expected: GateDecision) -> None:
    held, line = hold_outside_change_windows(decision, WEEKDAYS, moment, "25 %")
    assert held is expected
    if decision is GateDecision.PROMOTE and expected is GateDecision.CONTINUE:
        assert line is not None and line.startswith("Hold at 25 %: baked, but hold: outside change windows")
        assert "next advance allowed Mon 2026-12-14 09:00 CET (08:00 UTC)" in line
    else:
        assert line is None
    assert hold_outside_change_windows(decision, None, moment, "25 %") == (decision, None)
