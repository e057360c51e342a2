"""The compressed rehearsal clock: calendar time runs `factor` times faster than real time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cutover_kit.change_windows import ChangeWindows, decide_advance
from cutover_kit.clock import CompressedClock, SystemClock

FRIDAY_LATE = datetime(2026, 12, 11, 15, 59, tzinfo=timezone.utc)


class FakeRealTime:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


def test_a_day_in_ten_seconds() -> None:
    real = FakeRealTime()
    clock = CompressedClock.day_in(10, start=FRIDAY_LATE, real_time=real)
    assert clock.now() == FRIDAY_LATE
    real.seconds += 5
    assert clock.now() == FRIDAY_LATE + timedelta(hours=12)
    assert clock.real_seconds(86400) == pytest.approx(10.0)
    assert clock.real_seconds(-3) == 0.0


def test_a_change_window_opens_mid_rehearsal_on_the_compressed_clock() -> None:
    real = FakeRealTime()
    windows = ChangeWindows.from_dict({"timezone": "UTC", "windows": [{"days": ["mon"], "start": "09:00", "end": "16:00"}]})
    clock = CompressedClock.day_in(10, start=FRIDAY_LATE, real_time=real)
    held = decide_advance(windows, clock.now())
    assert not held.allowed
    wait = clock.real_seconds((held.next_allowed_at - clock.now()).total_seconds())
    assert wait == pytest.approx((2 * 86400 + 17 * 3600 + 60) / 8640)  # Fri 15:59 -> Mon 09:00, ~27 s real
    real.seconds += wait
    assert decide_advance(windows, clock.now()).allowed


def test_system_clock_is_utc_and_real_time() -> None:
    clock = SystemClock(real_time=lambda: 0.0)
    assert clock.now() == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert clock.real_seconds(30) == 30.0


@pytest.mark.parametrize(("start", "factor", "expected"), [
    (datetime(2026, 1, 1), 10.0, "aware datetime"),
    (FRIDAY_LATE, 0.5, "factor must be a number in 1..10,000,000"),
    (FRIDAY_LATE, True, "factor must be a number"),
])
def test_bad_clocks_are_refused(start: datetime, factor: float, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        CompressedClock(start=start, factor=factor)
