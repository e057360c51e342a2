"""Change windows: when a traffic step may advance (e.g. weekdays 09:00-16:00 Europe/Berlin).

A step that becomes due outside every window holds (its gate keeps watching) until the next window
opens; a rollback is never held. Whether an instant is inside a window is decided on the local wall
clock of the plan's time zone, so daylight-saving changes need no special case there: every instant
has exactly one wall time. Finding when the next window opens does: a window that starts inside
the spring-forward gap (02:30 on the night clocks jump 02:00 -> 03:00) opens at the jump itself, and
one that starts inside the repeated autumn hour opens at the first of the two occurrences.

Pure: no I/O, no clock of its own (callers pass `now`, see cutover_kit.clock). Times are aware
datetimes; naive ones are refused, since guessing their zone is how a hold lands an hour late.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
_SECONDS_PER_DAY = 86400
# A window opens at least once a week: looking 8 local days ahead always finds the next opening.
_LOOKAHEAD_DAYS = 8


class ChangeWindowError(ValueError):
    """The change windows are invalid; the message names the field (e.g. windows[0].end)."""


def _seconds_of_day(text: Any, field: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        # PyYAML (YAML 1.1) reads an unquoted 16:00 as the base-60 number 960.
        raise ChangeWindowError(
            f"{field}: {text} is a number: YAML reads an unquoted time like 16:00 in base 60 "
            f"({text // 60}:{text % 60:02d} -> {text}); write it in quotes, e.g. \"{text // 60:02d}:{text % 60:02d}\""
        )
    if not isinstance(text, str) or not _HH_MM.match(text):
        raise ChangeWindowError(f"{field}: expected a time \"HH:MM\" (00:00-23:59, or 24:00 as an end); got {text!r}")
    hours, minutes = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def _clock_text(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def window_problems(days: Any, start: Any, end: Any, field: str) -> list[str]:
    """Every problem of one window's days/start/end, each naming `field` (e.g. windows[0].end)."""
    found = []
    day_list = list(days) if isinstance(days, (list, tuple)) else None
    if not day_list:
        found.append(f"{field}.days: give at least one of {', '.join(DAYS)}; got {days!r}")
    else:
        unknown = [day for day in day_list if day not in DAYS]
        if unknown:
            found.append(f"{field}.days: {unknown} not among {', '.join(DAYS)}")
        if len(set(map(str, day_list))) != len(day_list):
            found.append(f"{field}.days: {day_list} names a day twice")
    try:
        start_seconds = _seconds_of_day(start, f"{field}.start")
        end_seconds = _seconds_of_day(end, f"{field}.end")
    except ChangeWindowError as error:
        return [*found, str(error)]
    if start_seconds == _SECONDS_PER_DAY:
        found.append(f"{field}.start: 24:00 is only an end; a window starting at midnight starts at \"00:00\"")
    elif end_seconds <= start_seconds:
        found.append(
            f"{field}: end {end} must be after start {start} (a window ends on the day it starts; "
            "split one that crosses midnight in two)"
        )
    return found


@dataclass(frozen=True)
class ChangeWindow:
    """One recurring window: on these weekdays, from start (inclusive) to end (exclusive), local time."""

    days: tuple[str, ...]
    start: str
    end: str

    def __post_init__(self) -> None:
        problems = window_problems(self.days, self.start, self.end, "window")
        if problems:
            raise ChangeWindowError("; ".join(problems))
        object.__setattr__(self, "days", tuple(self.days))

    @property
    def start_seconds(self) -> int:
        return _seconds_of_day(self.start, "start")

    @property
    def end_seconds(self) -> int:
        return _seconds_of_day(self.end, "end")

    def covers(self, local: datetime) -> bool:
        """Whether a local wall time is inside this window."""
        seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return DAYS[local.weekday()] in self.days and self.start_seconds <= seconds < self.end_seconds

    def describe(self) -> str:
        return f"{'/'.join(day.capitalize() for day in self.days)} {self.start}-{self.end}"

    def to_dict(self) -> dict[str, Any]:
        return {"days": list(self.days), "start": self.start, "end": self.end}


@dataclass(frozen=True)
class ChangeWindows:
    """The windows of a plan, in one IANA time zone (e.g. Europe/Berlin)."""

    timezone: str
    windows: tuple[ChangeWindow, ...]

    def __post_init__(self) -> None:
        zone_of(self.timezone)
        object.__setattr__(self, "windows", tuple(self.windows))
        if not self.windows or not all(isinstance(window, ChangeWindow) for window in self.windows):
            raise ChangeWindowError(f"windows: give at least one ChangeWindow; got {self.windows!r}")

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], field: str = "change_windows") -> ChangeWindows:
        """Build from the plan's `change_windows` mapping; ChangeWindowError names every bad field."""
        if not isinstance(document, Mapping):
            raise ChangeWindowError(f"{field}: expected a mapping with timezone and windows; got {document!r}")
        problems = []
        zone_name = document.get("timezone")
        try:
            zone_of(zone_name)
        except ChangeWindowError as error:
            problems.append(f"{field}.timezone: {error}")
        raw_windows = document.get("windows")
        if not isinstance(raw_windows, (list, tuple)) or not raw_windows:
            problems.append(f"{field}.windows: give at least one window; got {raw_windows!r}")
            raw_windows = []
        windows = []
        for index, raw in enumerate(raw_windows):
            where = f"{field}.windows[{index}]"
            if not isinstance(raw, Mapping) or set(raw) != {"days", "start", "end"}:
                problems.append(f"{where}: expected exactly days, start and end; got {raw!r}")
                continue
            found = window_problems(raw["days"], raw["start"], raw["end"], where)
            problems += found
            if not found:
                windows.append(ChangeWindow(tuple(raw["days"]), raw["start"], raw["end"]))
        if problems:
            raise ChangeWindowError("; ".join(problems))
        return cls(timezone=zone_name, windows=tuple(windows))

    def to_dict(self) -> dict[str, Any]:
        return {"timezone": self.timezone, "windows": [window.to_dict() for window in self.windows]}

    @property
    def zone(self) -> ZoneInfo:
        return zone_of(self.timezone)

    def describe(self) -> str:
        return f"{', '.join(window.describe() for window in self.windows)} {self.timezone}"


def zone_of(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ChangeWindowError(f"expected an IANA time zone name such as Europe/Berlin; got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ChangeWindowError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)") from None


def _require_aware(moment: datetime) -> None:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime (with a time zone); got {moment!r}")


def inside_window(windows: ChangeWindows, moment: datetime) -> ChangeWindow | None:
    """The window `moment` falls in, or None."""
    _require_aware(moment)
    local = moment.astimezone(windows.zone)
    return next((window for window in windows.windows if window.covers(local)), None)


def _first_instant_at_or_after(zone: ZoneInfo, day: date, seconds: int) -> datetime:
    """The first UTC instant whose wall time in `zone` is on `day` at or after `seconds` past midnight.

    An existing wall time maps to its first occurrence (fold=0 is the earlier one in a repeated
    hour). A wall time in a spring-forward gap never happens: the answer is the jump itself, found
    by bisection between the two readings of the missing time (both offsets), to the second.
    """
    wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
    early = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    if early.astimezone(zone).replace(tzinfo=None) == wall:
        return early
    late_offset = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    low, high = sorted((early, late_offset))  # wall(low) < target <= wall(high) across the gap

    def reached(instant: datetime) -> bool:
        return instant.astimezone(zone).replace(tzinfo=None) >= wall

    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if reached(middle):
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if reached(high.replace(microsecond=0)) else high


def _openings(zone: ZoneInfo, day: date, seconds: int) -> list[datetime]:
    """Every instant a window starting at `seconds` on `day` opens: once, or twice when its start
    is in the hour repeated in autumn (the window is open in both occurrences of that wall time)."""
    first = _first_instant_at_or_after(zone, day, seconds)
    wall = datetime.combine(day, time()) + timedelta(seconds=seconds)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    repeated = second != first and second.astimezone(zone).replace(tzinfo=None) == wall
    return [first, second] if repeated else [first]


def next_window_opening(windows: ChangeWindows, moment: datetime) -> datetime:
    """The earliest instant at or after `moment` (UTC) at which an advance is allowed."""
    _require_aware(moment)
    if inside_window(windows, moment):
        return moment.astimezone(timezone.utc)
    zone = windows.zone
    today = moment.astimezone(zone).date()
    openings = [
        opening
        for offset in range(-1, _LOOKAHEAD_DAYS)
        for day in [today + timedelta(days=offset)]
        for window in windows.windows
        if DAYS[day.weekday()] in window.days
        for opening in _openings(zone, day, window.start_seconds)
    ]
    later = [opening for opening in openings if opening > moment and inside_window(windows, opening)]
    if not later:  # cannot happen for validated windows (every window opens once a week)
        raise ChangeWindowError(f"no change window opens within {_LOOKAHEAD_DAYS} days of {moment.isoformat()}")
    return min(later)


@dataclass(frozen=True)
class AdvanceDecision:
    """Whether a due step may advance now; when not, when it may. `reason` is one log line."""

    allowed: bool
    next_allowed_at: datetime | None
    reason: str


def _duration_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"]
    return " ".join(parts) if minutes or hours or days else f"{int(seconds)} s"


def decide_advance(windows: ChangeWindows | None, now: datetime, *, rollback: bool = False) -> AdvanceDecision:
    """May a due step move now? Rollback: always (never held). No windows: always. Otherwise only
    inside a window; outside one, the decision says when the next one opens, in local time and UTC."""
    _require_aware(now)
    if rollback:
        return AdvanceDecision(True, now, "rollback is never held by change windows")
    if windows is None:
        return AdvanceDecision(True, now, "the plan has no change windows: advance when the gate passes")
    window = inside_window(windows, now)
    if window is not None:
        local = now.astimezone(windows.zone)
        closes = datetime.combine(local.date(), time(), tzinfo=windows.zone) + timedelta(seconds=window.end_seconds)
        return AdvanceDecision(
            True, now, f"inside change window {window.describe()} {windows.timezone} (closes {closes:%H:%M} local)"
        )
    opening = next_window_opening(windows, now)
    local = opening.astimezone(windows.zone)
    return AdvanceDecision(
        False,
        opening,
        f"hold: outside change windows ({windows.describe()}); next advance allowed "
        f"{local:%a %Y-%m-%d %H:%M} {local.tzname()} ({opening:%H:%M} UTC), in {_duration_text((opening - now).total_seconds())}",
    )


def windows_from_plan_field(document: Mapping[str, Any] | ChangeWindows | None) -> ChangeWindows | None:
    """The plan's `change_windows` value as ChangeWindows (None = no windows)."""
    if document is None or isinstance(document, ChangeWindows):
        return document
    return ChangeWindows.from_dict(document)


