"""Change windows: an advance is allowed only inside a window (local time of the plan's zone), a
held step learns when the next window opens (DST-safe), and a rollback is never held."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from cutover_kit.change_windows import (
    ChangeWindow,
    ChangeWindowError,
    ChangeWindows,
    decide_advance,
    inside_window,
    next_window_opening,
)

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ChangeWindows.from_dict(
    {"timezone": "Europe/Berlin", "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "16:00"}]}
)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def every_day(start: str, end: str) -> ChangeWindows:
    return ChangeWindows("Europe/Berlin", (ChangeWindow(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), start, end),))


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (berlin(2026, 12, 7, 9, 0), True),         # Monday, the minute the window opens
        (berlin(2026, 12, 7, 15, 59, 59), True),
        (berlin(2026, 12, 7, 16, 0), False),        # end is exclusive
        (berlin(2026, 12, 7, 8, 59, 59), False),
        (berlin(2026, 12, 12, 11, 0), False),       # Saturday
        (utc(2026, 12, 7, 8, 30), True),            # 09:30 in Berlin (CET, UTC+1)
        (utc(2026, 7, 6, 7, 30), True),             # 09:30 in Berlin (CEST, UTC+2)
        (utc(2026, 7, 6, 14, 30), False),           # 16:30 CEST
    ],
)
def test_inside_window_uses_the_local_wall_clock(moment: datetime, inside: bool) -> None:
    assert (inside_window(WEEKDAYS, moment) is not None) is inside


@pytest.mark.parametrize(
    ("moment", "opening"),
    [
        (berlin(2026, 12, 7, 7, 0), berlin(2026, 12, 7, 9, 0)),       # Monday early: today 09:00
        (berlin(2026, 12, 7, 10, 0), berlin(2026, 12, 7, 10, 0)),     # inside: now
        (berlin(2026, 12, 7, 16, 0), berlin(2026, 12, 8, 9, 0)),      # closed: tomorrow
        (berlin(2026, 12, 11, 16, 0), berlin(2026, 12, 14, 9, 0)),    # Friday after close: Monday
        (berlin(2026, 12, 12, 23, 59), berlin(2026, 12, 14, 9, 0)),   # Saturday night: Monday
        # Clocks go forward on Sunday 29 March 2026: Monday 09:00 is 07:00 UTC, not Friday's 08:00.
        (berlin(2026, 3, 27, 17, 0), utc(2026, 3, 30, 7, 0)),
        # ...and back on Sunday 25 October: Monday 09:00 is 08:00 UTC again.
        (berlin(2026, 10, 23, 17, 0), utc(2026, 10, 26, 8, 0)),
    ],
)
def test_next_opening(moment: datetime, opening: datetime) -> None:
    assert next_window_opening(WEEKDAYS, moment) == opening
    assert next_window_opening(WEEKDAYS, moment).tzinfo == timezone.utc


def test_a_window_starting_in_the_spring_forward_gap_opens_at_the_jump() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC): 02:30 never happens that night.
    windows = every_day("02:30", "04:00")
    assert next_window_opening(windows, utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 1, 0)
    assert inside_window(windows, utc(2026, 3, 29, 1, 0)) is not None
    assert inside_window(windows, utc(2026, 3, 29, 0, 59, 59)) is None


def test_a_window_in_the_repeated_autumn_hour_opens_in_both_occurrences() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET (01:00 UTC): 02:30 happens at 00:30 and 01:30 UTC.
    windows = every_day("02:30", "02:45")
    assert next_window_opening(windows, utc(2026, 10, 25, 0, 0)) == utc(2026, 10, 25, 0, 30)
    assert next_window_opening(windows, utc(2026, 10, 25, 0, 50)) == utc(2026, 10, 25, 1, 30)
    assert next_window_opening(windows, utc(2026, 10, 25, 1, 50)) == utc(2026, 10, 26, 1, 30)


def test_a_window_ending_at_midnight() -> None:
    windows = every_day("22:00", "24:00")
    assert inside_window(windows, berlin(2026, 12, 7, 23, 59, 59)) is not None
    assert next_window_opening(windows, berlin(2026, 12, 8, 0, 0)) == berlin(2026, 12, 8, 22, 0)


def test_the_next_opening_is_always_inside_a_window_and_never_earlier() -> None:
    windows = ChangeWindows.from_dict({"timezone": "America/New_York", "windows": [
        {"days": ["mon", "wed"], "start": "01:30", "end": "02:30"}, {"days": ["sun"], "start": "02:15", "end": "03:00"}]})
    moment = utc(2026, 1, 1)
    while moment < utc(2027, 1, 1):
        opening = next_window_opening(windows, moment)
        assert opening >= moment and inside_window(windows, opening) is not None
        assert opening - moment < timedelta(days=7)
        moment += timedelta(hours=7, minutes=13)


def test_decide_advance_inside_outside_and_rollback() -> None:
    inside = decide_advance(WEEKDAYS, berlin(2026, 12, 7, 10, 0))
    assert inside.allowed and "inside change window Mon/Tue/Wed/Thu/Fri 09:00-16:00 Europe/Berlin (closes 16:00 local)" in inside.reason
    held = decide_advance(WEEKDAYS, berlin(2026, 12, 11, 16, 30))
    assert not held.allowed and held.next_allowed_at == utc(2026, 12, 14, 8, 0)
    assert held.reason == ("hold: outside change windows (Mon/Tue/Wed/Thu/Fri 09:00-16:00 Europe/Berlin); next advance "
                           "allowed Mon 2026-12-14 09:00 CET (08:00 UTC), in 2 d 16 h 30 min")
    rollback = decide_advance(WEEKDAYS, berlin(2026, 12, 11, 16, 30), rollback=True)
    assert rollback.allowed and rollback.reason == "rollback is never held by change windows"
    assert decide_advance(None, utc(2026, 12, 12)).allowed


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        decide_advance(WEEKDAYS, datetime(2026, 12, 7, 10, 0))


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"timezone": "CEST", "windows": [{"days": ["mon"], "start": "09:00", "end": "10:00"}]},
         "change_windows.timezone: unknown time zone 'CEST'"),
        ({"timezone": "Europe/Berlin", "windows": [{"days": [], "start": "09:00", "end": "10:00"}]},
         "change_windows.windows[0].days: give at least one of mon"),
        ({"timezone": "Europe/Berlin", "windows": [{"days": ["mon", "mon"], "start": "09:00", "end": "10:00"}]},
         "names a day twice"),
        ({"timezone": "Europe/Berlin", "windows": [{"days": ["mon"], "start": "25:00", "end": "26:00"}]},
         "change_windows.windows[0].start: expected a time \"HH:MM\""),
        ({"timezone": "Europe/Berlin", "windows": [{"days": ["mon"], "start": "22:00", "end": "02:00"}]},
         "split one that crosses midnight in two"),
        ({"timezone": "Europe/Berlin", "windows": [{"days": ["mon"], "start": "09:00"}]},
         "change_windows.windows[0]: expected exactly days, start and end"),
        ({"timezone": "Europe/Berlin", "windows": []}, "change_windows.windows: give at least one window"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(document: dict, expected: str) -> None:
    with pytest.raises(ChangeWindowError) as caught:
        ChangeWindows.from_dict(document)
    assert expected in str(caught.value)


def test_windows_built_directly_are_checked_too() -> None:
    with pytest.raises(ChangeWindowError, match="unknown time zone 'Berlin'"):
        ChangeWindows("Berlin", (ChangeWindow(("mon",), "09:00", "10:00"),))
    with pytest.raises(ChangeWindowError, match="give at least one ChangeWindow"):
        ChangeWindows("Europe/Berlin", ())
    with pytest.raises(ChangeWindowError, match="window.end: end 08:00 must be after start|window: end 08:00 must be after"):
        ChangeWindow(("mon",), "09:00", "08:00")


def test_windows_round_trip() -> None:
    assert ChangeWindows.from_dict(WEEKDAYS.to_dict()) == WEEKDAYS

