"""The actions layer with fakes (no Airflow, no services): the reflex rollback's two levels, in
order, each timed, the traffic level even when the flag level failed; the emergency stop check."""

from __future__ import annotations

import time

import pytest

from cutover_kit.actions.emergency import EmergencyStopLatched, StopStateUnknown, ensure_not_stopped, latched_stop_or_none
from cutover_kit.actions.flags import apply_everywhere, flags_to_rails_now
from cutover_kit.actions.rollback import Levers, reflex_lines, restore_blue_now
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


def test_a_failed_traffic_level_is_reported_not_raised_and_no_backend_skips_flags():
    calls: list[str] = []
    facts = restore_blue_now(levers(calls, MemoryStore(), broken_router=True), None)
    assert calls == ["traffic 0"]
    assert facts == {"traffic_restore_error": "ConnectionRefusedError: runtime API refused"}
    assert reflex_lines({**facts, "decided_at": 0.0}) == ["Traffic rollback failed: ConnectionRefusedError: runtime API refused"]


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
