"""Inject faults into the sandbox apps (blue Rails, green TypeScript), by hand or on a schedule tied to the cutover's progress.

Faults go straight to each app's own port (``/__fault`` is denied through HAProxy). A
:class:`FaultSchedule` fires each fault once, when its trigger is met, and records when: those
fault windows let :func:`sandbox.traffic.report` tell injected failures from real ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from sandbox.config import COLORS, SandboxConfig

log = logging.getLogger("sandbox.faults")

KINDS = ("errors", "latency", "crash", "body_drift", "capacity_limit", "insecure", "corrupt_writes", "drop_writes")
WEAKNESSES = ("stack_trace", "missing_security_headers", "x_powered_by", "unauthenticated_route")
# Write faults (green's TypeScript app): `fraction` of new orders corrupted or acknowledged but not committed.
WRITE_FAULT_FIELDS = {"corrupt_writes": "corrupt_writes_fraction", "drop_writes": "drop_writes_fraction"}
POLL_SECONDS = 0.1
PERCENT_TOLERANCE = 1e-6  # router percents come back as floats; "equal" means equal to this


class FaultError(RuntimeError):
    """An app refused or did not answer a fault command."""


class FaultController:
    """POST/DELETE an app's ``/__fault`` endpoint."""

    def __init__(self, config: SandboxConfig, timeout_seconds: float = 2.0) -> None:
        self.config = config
        self.timeout_seconds = timeout_seconds

    def inject(self, color: str, kind: str, error_fraction: float | None = None,
               added_latency_ms: float | None = None, max_concurrent: int | None = None,
               weakness: str | None = None, *, fraction: float | None = None) -> dict[str, Any]:
        """Start a fault on one color; returns the app's answer (its new fault settings)."""
        body = fault_body(kind, error_fraction, added_latency_ms, max_concurrent, weakness, fraction=fraction)
        return self._call("POST", color, body)

    def clear(self, color: str) -> dict[str, Any]:
        """Remove error, latency and body-drift faults of one color.

        An app that refuses connections (crashed, not restarted yet) has no active fault, and a
        restart starts clean, so that counts as cleared; any other failure raises.
        """
        try:
            return self._call("DELETE", color, None)
        except FaultError as error:
            if self._refused(error):
                return {"error_fraction": 0.0, "added_latency_ms": 0.0, "body_drift": False, "max_concurrent": 0,
                        "weakness": "none", "corrupt_writes_fraction": 0.0, "drop_writes_fraction": 0.0,
                        "running": False}
            raise

    @staticmethod
    def _refused(error: BaseException) -> bool:
        """True if a ConnectionRefusedError is anywhere in the requests/urllib3 exception chain."""
        stack: list[Any] = [error]
        seen: set[int] = set()
        while stack:
            current = stack.pop()
            if not isinstance(current, BaseException) or id(current) in seen:
                continue
            seen.add(id(current))
            if isinstance(current, ConnectionRefusedError):
                return True
            stack += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        return False

    def current(self, color: str) -> dict[str, Any]:
        return self._call("GET", color, None)

    def _call(self, method: str, color: str, body: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{self.config.app_url(color)}/__fault"
        try:
            response = requests.request(method, url, json=body, timeout=self.timeout_seconds)
        except requests.RequestException as error:
            raise FaultError(f"{method} {url} failed: {error}") from error
        if response.status_code not in (200, 202):
            raise FaultError(f"{method} {url} answered {response.status_code}: {response.text[:200]}")
        return response.json()


def fault_body(kind: str, error_fraction: float | None, added_latency_ms: float | None,
               max_concurrent: int | None = None, weakness: str | None = None, *,
               fraction: float | None = None) -> dict[str, Any]:
    if kind == "errors":
        if error_fraction is None:
            raise ValueError("an errors fault needs error_fraction (0..1)")
        return {"error_fraction": error_fraction}
    if kind == "latency":
        if added_latency_ms is None:
            raise ValueError("a latency fault needs added_latency_ms (>= 0)")
        return {"added_latency_ms": added_latency_ms}
    if kind == "crash":
        return {"crash": True}
    if kind == "body_drift":
        # The app upper-cases every `status` field of its JSON API answers (smoke parity tests).
        return {"body_drift": True}
    if kind == "capacity_limit":
        # The app serves at most max_concurrent of its own API requests at once; the rest queue.
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError("a capacity_limit fault needs max_concurrent (a whole number >= 1)")
        return {"max_concurrent": max_concurrent}
    if kind == "insecure":
        if weakness not in WEAKNESSES:
            raise ValueError(f"an insecure fault needs weakness, one of {WEAKNESSES}; got {weakness!r}")
        return {"weakness": weakness}
    if kind in WRITE_FAULT_FIELDS:
        if fraction is None or isinstance(fraction, bool) or not 0 < fraction <= 1:
            raise ValueError(f"a {kind} fault needs fraction in (0, 1]; got {fraction!r}")
        return {WRITE_FAULT_FIELDS[kind]: fraction}
    raise ValueError(f"unknown fault kind {kind!r}; expected one of {KINDS}")


def validate_fault(fault: dict[str, Any]) -> None:
    """Raise ValueError naming what is wrong with one scheduled fault."""
    if fault.get("color") not in COLORS:
        raise ValueError(f"fault {fault}: color must be one of {COLORS}")
    fault_body(fault.get("fault", ""), fault.get("error_fraction"), fault.get("added_latency_ms"),
               fault.get("max_concurrent"), fault.get("weakness"), fraction=fault.get("fraction"))
    triggers = [key for key in ("after_seconds", "at_green_percent") if fault.get(key) is not None]
    if len(triggers) != 1:
        raise ValueError(f"fault {fault}: give exactly one of after_seconds or at_green_percent")
    value = fault[triggers[0]]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"fault {fault}: {triggers[0]} must be a number >= 0")
    if triggers[0] == "at_green_percent" and value > 100:
        raise ValueError(f"fault {fault}: at_green_percent must be within 0..100")


class FaultSchedule:
    """Background thread firing each fault exactly once when its trigger is met.

    A fault is ``{color, fault: one of KINDS, error_fraction?, added_latency_ms?, max_concurrent?,
    weakness?, fraction?, after_seconds? | at_green_percent?}``. ``after_seconds`` counts from ``started_at`` (epoch
    seconds, the same clock as the traffic ledger); ``at_green_percent`` fires when
    ``observe_green_percent()`` returns that value, polled every 100 ms.
    """

    def __init__(self, controller: FaultController, faults: Sequence[dict[str, Any]],
                 observe_green_percent: Callable[[], float], started_at: float | None = None) -> None:
        for fault in faults:
            validate_fault(fault)
        self.controller = controller
        self.faults = [dict(fault) for fault in faults]
        self.observe_green_percent = observe_green_percent
        self.started_at = time.time() if started_at is None else started_at
        self._fired = [False] * len(self.faults)
        self._windows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.observe_errors = 0

    def start(self) -> FaultSchedule:
        self._thread = threading.Thread(target=self._run, name="fault-schedule", daemon=True)
        self._thread.start()
        return self

    def stop(self, clear_faults: bool = True) -> list[dict[str, Any]]:
        """Stop the thread; optionally clear error/latency faults and close their windows."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if clear_faults:
            self._clear_open_windows()
        return self.fault_windows()

    def fault_windows(self) -> list[dict[str, Any]]:
        """``{color, kind, start, end|None, ...}`` per fired fault (end None: still open)."""
        with self._lock:
            return [dict(window) for window in self._windows]

    @property
    def pending(self) -> list[dict[str, Any]]:
        return [fault for fault, fired in zip(self.faults, self._fired) if not fired]

    def _run(self) -> None:
        while not self._stop.is_set() and not all(self._fired):
            percent = self._observe() if any(self._waits_for_percent()) else None
            for index, fault in enumerate(self.faults):
                if not self._fired[index] and self._due(fault, percent):
                    self._fired[index] = True  # before firing: never twice, even if it raises
                    self._fire(fault)
            self._stop.wait(POLL_SECONDS)

    def _waits_for_percent(self) -> list[bool]:
        return [not fired and fault.get("at_green_percent") is not None
                for fault, fired in zip(self.faults, self._fired)]

    def _observe(self) -> float | None:
        try:
            return float(self.observe_green_percent())
        except Exception as error:  # noqa: BLE001 - a failed reading is retried next poll
            self.observe_errors += 1
            log.warning("could not observe green percent: %s", error)
            return None

    def _due(self, fault: dict[str, Any], percent: float | None) -> bool:
        if fault.get("after_seconds") is not None:
            return time.time() - self.started_at >= fault["after_seconds"]
        if percent is None or abs(percent - fault["at_green_percent"]) > PERCENT_TOLERANCE:
            return False
        # delay_seconds: fire that long after the percentage was first seen (e.g. into a watch).
        first_seen = fault.setdefault("_first_seen", time.time())
        return time.time() - first_seen >= float(fault.get("delay_seconds") or 0)

    def _fire(self, fault: dict[str, Any]) -> None:
        public = {key: value for key, value in fault.items() if not key.startswith("_")}
        window = {"color": fault["color"], "kind": fault["fault"], "start": time.time(), "end": None,
                  "error": None, "fault": public}
        try:
            self.controller.inject(fault["color"], fault["fault"], fault.get("error_fraction"),
                                   fault.get("added_latency_ms"), fault.get("max_concurrent"), fault.get("weakness"),
                                   fraction=fault.get("fraction"))
        except FaultError as error:
            window["error"] = str(error)
            window["end"] = window["start"]  # never took effect: an empty window
            log.error("fault %s could not be injected: %s", fault, error)
        with self._lock:
            self._windows.append(window)
        log.info("fault fired: %s %s at +%.2fs", fault["color"], fault["fault"], window["start"] - self.started_at)

    def _clear_open_windows(self) -> None:
        with self._lock:
            open_windows = [w for w in self._windows if w["end"] is None and w["kind"] != "crash"]
        for color in sorted({window["color"] for window in open_windows}):
            try:
                self.controller.clear(color)
            except FaultError as error:
                log.warning("could not clear faults on %s: %s", color, error)
                continue
            ended = time.time()
            with self._lock:
                for window in open_windows:
                    if window["color"] == color:
                        window["end"] = ended
