"""Stage 1's judge of what an earlier run left behind: a finished cutover is never undone by accident."""

from __future__ import annotations

import pytest

from cutover_kit.control import CutoverStateError
from cutover_kit.previous_cutover import PROMOTED, ROLLED_BACK, RecordedOutcome, judge_previous_cutover


def outcome(kind: str) -> RecordedOutcome:
    return RecordedOutcome(kind, "manual__2026-12-01T10:00:00", "cutover", 1_764_583_200.0, "Promoted: 100 % green")


def test_fresh_start_is_allowed():
    decision = judge_previous_cutover(0, None)
    assert decision.allowed and not decision.starts_over
    assert decision.line == "No cutover in place: green gets 0 % of traffic; no earlier outcome recorded"


def test_after_a_rollback_a_new_run_is_allowed():
    decision = judge_previous_cutover(0, outcome(ROLLED_BACK))
    assert decision.allowed and "ended rolled_back" in decision.line


@pytest.mark.parametrize("green, last, found", [
    (100, outcome(PROMOTED), "the router already sends 100 % of traffic to green (read back) and the last cutover promoted"),
    (100, None, "the router already sends 100 % of traffic to green (read back)."),
    (25, outcome(ROLLED_BACK), "the router already sends 25 % of traffic to green"),
    (0, outcome(PROMOTED), "the last cutover promoted (cutover run manual__2026-12-01T10:00:00 ended promoted"),
])
def test_traffic_on_green_or_a_promotion_refuses(green, last, found):
    decision = judge_previous_cutover(green, last)
    assert not decision.allowed
    assert decision.line.startswith("Cutover refused: ") and found in decision.line, decision.line
    assert "allow_rerun_reason" in decision.line and "emergency_rollback" in decision.line


def test_an_explicit_reason_starts_over_and_is_logged():
    decision = judge_previous_cutover(100, outcome(PROMOTED), "  redo after  the payments fix ")
    assert decision.allowed and decision.starts_over
    assert decision.line.startswith("Re-run on purpose: the router already sends 100 %")
    assert "Reason given: redo after the payments fix." in decision.line


@pytest.mark.parametrize("bad", ["  ", "ok", 7])
def test_an_unusable_reason_is_refused_before_anything(bad):
    with pytest.raises(ValueError):
        judge_previous_cutover(100, outcome(PROMOTED), bad)


def test_outcome_record_round_trips_and_bad_records_are_named():
    record = outcome(PROMOTED)
    assert RecordedOutcome.from_json(record.to_json()) == record
    with pytest.raises(CutoverStateError, match="unreadable"):
        RecordedOutcome.from_json(b'{"outcome": "promoted"}')
    with pytest.raises(CutoverStateError, match="unknown recorded outcome 'maybe'"):
        RecordedOutcome("maybe", "r", "cutover", 0.0, "x")
