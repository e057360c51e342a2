"""The emergency stop record: reason validation, serialization, and the lines it produces."""

from __future__ import annotations

import pytest

from cutover_kit.control import CutoverStateError, EmergencyStop, emergency_halt_line, refusal_line, validate_reason


@pytest.mark.parametrize("reason, message", [
    (None, "needs a reason"),
    (42, "reason must be text, got int"),
    ("  \n ", "too short \\(0 characters"),
    ("ok", "too short \\(2 characters"),
    ("x" * 501, "too long \\(501 > 500"),
])
def test_bad_reasons_are_refused(reason, message):
    with pytest.raises(ValueError, match=message):
        validate_reason(reason)


def test_reason_whitespace_is_normalised():
    assert validate_reason("  checkout\n  errors   ") == "checkout errors"


def test_round_trip_and_lines():
    stop = EmergencyStop("green corrupts invoices", "alice", 0.0, "manual__2026")
    assert EmergencyStop.from_json(stop.to_json()) == stop
    assert stop.describe() == "emergency rollback by alice at 00:00:00 UTC (manual__2026): green corrupts invoices"
    assert emergency_halt_line("25 %", stop).startswith("Halt at 25 %: emergency rollback by alice")
    assert refusal_line("promote", stop).startswith("Refusing to promote: emergency rollback")


@pytest.mark.parametrize("raw", ["", "[]", '{"reason": "x"}', '{"reason": "", "requested_by": "a", "requested_at": 1, "source_run_id": "r"}'])
def test_unreadable_records_are_named(raw):
    with pytest.raises(CutoverStateError, match="emergency stop record is unreadable"):
        EmergencyStop.from_json(raw)
