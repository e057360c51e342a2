"""The emergency stop as the cutover obeys it: refuse an action while a stop is latched, and read
the stop best-effort for the records. The stop is read through ``read_stop()`` (the caller's
CutoverStateHook().emergency_stop); failures are the plain exceptions below."""

from __future__ import annotations

import logging
from collections.abc import Callable

from cutover_kit.control import CutoverStateError, EmergencyStop, refusal_line

log = logging.getLogger(__name__)

ReadStop = Callable[[], "EmergencyStop | None"]


class EmergencyStopLatched(RuntimeError):
    """An operator latched the emergency stop: the action is refused for good (no retry)."""

    def __init__(self, line: str, stop: EmergencyStop) -> None:
        super().__init__(line)
        self.stop = stop


class StopStateUnknown(RuntimeError):
    """The shared state could not be read: the action is refused for now (a retry may read it)."""


def ensure_not_stopped(action: str, read_stop: ReadStop) -> None:
    """Refuse `action` while an emergency stop is latched; an unreadable state also refuses: the
    cutover never advances on an unknown."""
    try:
        stop = read_stop()
    except CutoverStateError as error:
        raise StopStateUnknown(f"Refusing to {action}: {error}") from error
    if stop is not None:
        line = refusal_line(action, stop)
        log.error(line)
        raise EmergencyStopLatched(line, stop)


def latched_stop_or_none(read_stop: ReadStop) -> EmergencyStop | None:
    """Best effort, for the rollback record and the verdict: they must run even if Redis is down."""
    try:
        return read_stop()
    except CutoverStateError as error:
        log.warning("Could not read the emergency stop (continuing without it): %s", error)
        return None
