"""Clocks the calendar reads: the real one, and a compressed one for rehearsals (seconds for days).

Code that waits for a change window or a day-long bake takes a :class:`Clock` instead of calling
``datetime.now()`` and sleeping, so a rehearsal can run the real calendar (5 % for a day, ...,
a 48 h standby) in minutes: a :class:`CompressedClock` with ``factor=8640`` turns a day into 10 s
of real time, and a change window that opens "tomorrow at 09:00" opens seconds later.

Pure apart from reading the real time, which is injectable (``real_time``) so tests need no sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current calendar time (aware, UTC)."""

    def real_seconds(self, calendar_seconds: float) -> float:
        """Real seconds to wait for `calendar_seconds` of this clock to pass."""


@dataclass(frozen=True)
class SystemClock:
    """The wall clock: one calendar second is one real second."""

    real_time: Callable[[], float] = time.time

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.real_time(), tz=timezone.utc)

    def real_seconds(self, calendar_seconds: float) -> float:
        return max(0.0, float(calendar_seconds))


@dataclass(frozen=True)
class CompressedClock:
    """Calendar time that runs `factor` times faster than real time, starting at `start`.

    ``now() = start + (real elapsed since construction) * factor``. Monotonic as long as the real
    time source is; `start` lets a rehearsal begin on a chosen day (e.g. a Friday at 15:59, to see
    a change window close).
    """

    start: datetime
    factor: float
    real_time: Callable[[], float] = time.monotonic
    _real_start: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.start, datetime) or self.start.utcoffset() is None:
            raise ValueError(f"CompressedClock.start must be an aware datetime; got {self.start!r}")
        if not isinstance(self.factor, (int, float)) or isinstance(self.factor, bool) or not 1 <= self.factor <= 10_000_000:
            raise ValueError(f"CompressedClock.factor must be a number in 1..10,000,000; got {self.factor!r}")
        object.__setattr__(self, "_real_start", self.real_time())

    @classmethod
    def day_in(cls, real_seconds_per_day: float, start: datetime, real_time: Callable[[], float] = time.monotonic) -> CompressedClock:
        """A clock on which one calendar day takes `real_seconds_per_day` real seconds."""
        if real_seconds_per_day <= 0:
            raise ValueError(f"real_seconds_per_day must be > 0; got {real_seconds_per_day!r}")
        return cls(start=start, factor=86400.0 / real_seconds_per_day, real_time=real_time)

    def now(self) -> datetime:
        elapsed = (self.real_time() - self._real_start) * self.factor
        return self.start.astimezone(timezone.utc) + timedelta(seconds=elapsed)

    def real_seconds(self, calendar_seconds: float) -> float:
        return max(0.0, float(calendar_seconds)) / self.factor
