"""The actions layer with fakes (no Airflow, no services): the reflex rollback's two levels, in
order, each timed, the traffic level even when the flag level failed, each level within its own
deadline (a refusing or hanging router, a hanging or slow flag store); the emergency stop check."""

from __future__ import annotations

import threading
import time

import pytest

from cutover_kit.actions.emergency import EmergencyStopLatched, StopStateUnknown, ensure_not_stopped, latched_stop_or_none
from cutover_kit.actions.flags import apply_everywhere, flags_to_rails_now
from cutover_kit.actions.rollback import (
    Levers, RollbackNotVerified, reflex_lines, require_verified, restore_blue_now, rollback_failure,
)
from cutover_kit.control import CutoverStateError, EmergencyStop
from cutover_kit.flags.model import FlagState, FlagStoreError
from cutover_kit.routing import RouterWeights


class MemoryStore:
    name = "memory"

    def __init__(self) -> None:
        self.state = FlagState.for_step(50)

    def read(self) -> FlagState:
        return self.state

    def write(self, state: FlagState) -> None:
        self.state = state


class Router:
    def __init__(self, calls: list[str], broken: bool = False) -> None:
        self.calls, self.broken = calls, broken

    def set_green_percent(self, percent: int) -> RouterWeights:
        self.calls.append(f"traffic {percent}")
        if self.broken:
            raise ConnectionRefusedError("runtime API refused")
        return RouterWeights(blue=100, green=0)


def reports_of(store: MemoryStore, calls: list[str]):
    """Both apps evaluate what the store holds, as the sandbox apps report it on /__flags."""
    def read() -> dict:
        calls.append("apps")
        flags = store.state.as_flags()
        return {app: {"backend": "file", "evaluates_flags": True, "flags": flags} for app in ("app_blue", "app_green")}
    return read


def levers(calls: list[str], store: MemoryStore, broken_router: bool = False, broken_store: bool = False) -> Levers:
    def open_store(backend: str) -> MemoryStore:
        calls.append(f"flags {backend}")
        if broken_store:
            raise FlagStoreError("flagd file unwritable")
        return store
    return Levers(router=Router(calls, broken_router), open_flag_store=open_store, read_app_reports=reports_of(store, calls))


def test_flags_go_back_first_then_traffic_each_timed(monkeypatch):
    calls: list[str] = []
    store = MemoryStore()
    decided_at = time.time()
    monkeypatch.setattr("cutover_kit.actions.flags.app_differences", lambda desired, backend, reports: [])
    facts = restore_blue_now(levers(calls, store), "file")
    assert calls[0] == "flags file" and calls[-1] == "traffic 0"
    assert store.state == FlagState.rails()
    assert decided_at <= facts["flags_restored_at"] <= facts["traffic_restored_at"]
    assert facts["weights_after_rollback"] == {"blue": 100, "green": 0} and facts["flags_store"] == "memory"
    lines = reflex_lines({**facts, "decided_at": decided_at})
    assert lines[0].startswith("Flags -> Rails ") and lines[1].startswith("Traffic back on blue ")


def test_the_traffic_level_runs_even_when_the_flag_level_failed():
    calls: list[str] = []
    facts = restore_blue_now(levers(calls, MemoryStore(), broken_store=True), "file")
    assert calls == ["flags file", "traffic 0"]
    assert facts["flags_restore_error"] == "FlagStoreError: flagd file unwritable"
    assert "traffic_restored_at" in facts


def test_a_router_that_keeps_refusing_is_retried_until_its_deadline_then_reported_not_raised():
    calls: list[str] = []
    started = time.monotonic()
    facts = restore_blue_now(levers(calls, MemoryStore(), broken_router=True), None, traffic_deadline_seconds=0.5)
    spent = time.monotonic() - started
    assert 0.5 <= spent < 1.5, spent  # kept retrying for its whole deadline, and not much longer
    assert set(calls) == {"traffic 0"} and len(calls) >= 2  # no backend: the flag level is skipped
    assert facts["traffic_attempts"] == len(calls)
    error = facts["traffic_restore_error"]
    assert error.startswith(f"router not set back to blue after {len(calls)} attempt(s) in ")
    assert error.endswith("(deadline 0.5 s); last: ConnectionRefusedError: runtime API refused")
    assert reflex_lines({**facts, "decided_at": 0.0}) == [f"Traffic rollback failed: {error}"]
    assert rollback_failure(facts) == f"traffic NOT back on blue ({error})"
    with pytest.raises(RollbackNotVerified, match="Rollback NOT verified: traffic NOT back on blue"):
        require_verified(facts)


class FlakyRouter:
    """Refuses `refusals` times (the runtime API restarting), then sets the weights."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.attempts = refusals, 0

    def set_green_percent(self, percent: int) -> RouterWeights:
        self.attempts += 1
        if self.attempts <= self.refusals:
            raise ConnectionRefusedError("runtime API refused")
        return RouterWeights(blue=100, green=0)


def test_a_router_back_within_the_deadline_is_a_verified_rollback():
    router = FlakyRouter(refusals=2)
    lever = Levers(router=router, open_flag_store=lambda backend: MemoryStore(), read_app_reports=dict)
    facts = restore_blue_now(lever, None, traffic_deadline_seconds=10)
    assert router.attempts == 3 and facts["traffic_attempts"] == 3
    assert facts["weights_after_rollback"] == {"blue": 100, "green": 0} and "traffic_restore_error" not in facts
    assert rollback_failure(facts) is None
    require_verified(facts)
    assert reflex_lines({**facts, "decided_at": facts["traffic_restored_at"]})[0].endswith(
        "(weights {'blue': 100, 'green': 0}, verified by read-back, on attempt 3)")


def hanging_store_levers(calls: list[str], release: threading.Event, answers_after: float | None = None) -> Levers:
    """A flag store that hangs (until `release`), or answers only after `answers_after` seconds."""
    store = MemoryStore()

    def open_store(backend: str) -> MemoryStore:
        calls.append(f"flags {backend}")
        if answers_after is None:
            release.wait(30)
            raise FlagStoreError("Unleash did not answer")
        time.sleep(answers_after)
        return store
    return Levers(router=Router(calls), open_flag_store=open_store, read_app_reports=reports_of(store, []))


def test_a_hanging_flag_store_delays_traffic_by_its_head_start_only_and_is_reported(monkeypatch):
    monkeypatch.setattr("cutover_kit.actions.flags.app_differences", lambda desired, backend, reports: [])
    calls: list[str] = []
    release = threading.Event()
    started = time.time()
    try:
        facts = restore_blue_now(hanging_store_levers(calls, release), "unleash", flags_head_start_seconds=0.2,
                                 flags_deadline_seconds=0.6, traffic_deadline_seconds=5)
    finally:
        release.set()
    spent = time.time() - started
    assert calls == ["flags unleash", "traffic 0"]
    assert 0.2 <= facts["traffic_restored_at"] - started < 0.5  # the head start, not the flag store's hang
    assert 0.6 <= spent < 1.0  # then the flag level got the rest of its own deadline
    assert facts["flags_restore_error"] == "the unleash flag store did not answer within its 0.6 s deadline"
    assert facts["flags_overtaken"] is True and "flags_restored_at" not in facts
    assert rollback_failure(facts) == ("flags NOT verified on Rails (the unleash flag store did not answer within "
                                       "its 0.6 s deadline)")


def test_a_slow_flag_store_is_overtaken_by_traffic_and_still_verified_within_its_deadline(monkeypatch):
    monkeypatch.setattr("cutover_kit.actions.flags.app_differences", lambda desired, backend, reports: [])
    calls: list[str] = []
    facts = restore_blue_now(hanging_store_levers(calls, threading.Event(), answers_after=0.4), "file",
                             flags_head_start_seconds=0.1, flags_deadline_seconds=3, traffic_deadline_seconds=5)
    assert calls == ["flags file", "traffic 0"]
    assert facts["traffic_restored_at"] < facts["flags_restored_at"]  # traffic did not wait for the slow store
    assert facts["flags_overtaken"] is True and rollback_failure(facts) is None
    flags_line = reflex_lines({**facts, "decided_at": facts["traffic_restored_at"]})[0]
    assert "s after the decision (after traffic: the store missed its head start), verified in memory" in flags_line


def test_a_router_that_hangs_past_its_deadline_is_abandoned_and_reported(monkeypatch):
    monkeypatch.setattr("cutover_kit.actions.rollback.TRAFFIC_LAST_ATTEMPT_SECONDS", 0.2)
    release = threading.Event()

    class HangingRouter:
        def set_green_percent(self, percent: int) -> RouterWeights:
            release.wait(30)
            raise TimeoutError("runtime API hung")

    started = time.monotonic()
    try:
        facts = restore_blue_now(Levers(HangingRouter(), lambda backend: MemoryStore(), dict), None,
                                 traffic_deadline_seconds=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 1.0
    assert facts == {"traffic_restore_error": "router did not answer within the 0.3 s traffic deadline"}


def test_deadlines_are_checked_before_anything_moves():
    calls: list[str] = []
    with pytest.raises(ValueError, match="rollback deadlines"):
        restore_blue_now(levers(calls, MemoryStore()), "file", flags_head_start_seconds=10, flags_deadline_seconds=5)
    assert calls == []


def test_apply_raises_when_apps_lag_but_the_reflex_only_reports(monkeypatch):
    store = MemoryStore()
    monkeypatch.setattr("cutover_kit.actions.flags.app_differences", lambda desired, backend, reports: ["app_green lags"])
    lever = levers([], store)
    with pytest.raises(FlagStoreError, match="app_green lags"):
        apply_everywhere(FlagState.rails(), "file", lever.open_flag_store, lever.read_app_reports, timeout_seconds=0.05)
    facts = flags_to_rails_now("file", lever.open_flag_store, lever.read_app_reports, timeout_seconds=0.05)
    assert "app_green lags" in facts["flags_restore_error"]


def test_emergency_stop_refuses_and_an_unknown_state_refuses_for_now():
    stop = EmergencyStop("green corrupts invoices", "alice", 1_700_000_000.0, "manual__1")
    ensure_not_stopped("move green to 25 %", lambda: None)
    with pytest.raises(EmergencyStopLatched, match="Refusing to move green to 25 %: .*green corrupts invoices") as latched:
        ensure_not_stopped("move green to 25 %", lambda: stop)
    assert latched.value.stop == stop

    def unreadable():
        raise CutoverStateError("redis down")
    with pytest.raises(StopStateUnknown, match="Refusing to move green to 25 %: redis down"):
        ensure_not_stopped("move green to 25 %", unreadable)
    assert latched_stop_or_none(unreadable) is None and latched_stop_or_none(lambda: stop) == stop
