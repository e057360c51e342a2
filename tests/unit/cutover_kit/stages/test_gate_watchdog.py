"""The gate watchdog's task with fakes for Redis, the router, the flag store and Airflow's context:
it rolls back a silent gate (flags, then traffic) with its own reason and records the outcome,
leaves a live gate alone, touches nothing when it cannot read its witnesses, and fails with the
reason when the rollback does not verify. The decision itself is tested in test_dead_man."""

from __future__ import annotations

import functools
import logging
import time
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.actions.rollback import Levers, restore_blue_now
from cutover_kit.control import CutoverStateError
from cutover_kit.dead_man import GateHeartbeat
from cutover_kit.flags.model import FlagState
from cutover_kit.gate import GateDecision, GateProgress
from cutover_kit.previous_cutover import ROLLED_BACK
from cutover_kit.routing import RouterWeights, weights_for_green_percent
from cutover_kit.stages import gate_watchdog

RUN = "manual__2026-12-07T19:00:00+00:00"


class World:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.weights = weights_for_green_percent(25)
        self.router_refuses = False
        self.heartbeat: GateHeartbeat | None = None
        self.progress = {"run_id": RUN, "step": "25 %", "at": time.time() - 300, "dag_id": "cutover"}
        self.state_broken = False
        self.recorded = []
        self.flags = FlagState.for_step(25)
        self.run_state = "running"
        self.latched = []
        self.latch_broken = False

    def state_of(self, dag_id: str, run_id: str) -> str:  # TaskInstance.get_dagrun_state
        assert (dag_id, run_id) == ("cutover", RUN)
        return self.run_state

    # CutoverStateHook
    def gate_heartbeat(self):
        if self.state_broken:
            raise CutoverStateError("cutover state (redis_default) unavailable while reading the gate heartbeat")
        return self.heartbeat

    def progress_(self):
        return self.progress

    def last_outcome(self):
        return None

    def record_outcome(self, outcome) -> None:
        self.recorded.append(outcome)

    def latch_emergency_stop(self, stop):
        self.calls.append("latch")
        if self.latch_broken:
            raise CutoverStateError("cutover state (redis_default) unavailable while latching the emergency stop")
        self.latched.append(stop)
        return stop

    # Router
    def read_weights(self) -> RouterWeights:
        return self.weights

    def set_green_percent(self, percent: int) -> RouterWeights:
        self.calls.append(f"traffic {percent}")
        if self.router_refuses:
            raise ConnectionRefusedError("runtime API refused")
        self.weights = weights_for_green_percent(percent)
        return self.weights

    # Flag store (any backend) and the apps' reports
    def open_store(self, backend: str):
        self.calls.append(f"flags {backend}")
        world = self

        class Store:
            name = backend

            def read(self):
                return world.flags

            def write(self, state):
                world.flags = state
        return Store()

    def reports(self) -> dict:
        return {app: {"backend": "file", "evaluates_flags": True, "flags": self.flags.as_flags()}
                for app in ("app_blue", "app_green")}


@pytest.fixture
def world(monkeypatch):
    world = World()
    state = SimpleNamespace(gate_heartbeat=world.gate_heartbeat, progress=world.progress_, last_outcome=world.last_outcome,
                            record_outcome=world.record_outcome, latch_emergency_stop=world.latch_emergency_stop)
    ti = SimpleNamespace(dag_id="gate_watchdog", get_dagrun_state=lambda dag_id, run_id: world.state_of(dag_id, run_id))
    monkeypatch.setattr("cutover_kit.hooks.cutover_state.CutoverStateHook", lambda: state)
    routers_for = []  # the plans the watchdog asked a router for
    monkeypatch.setattr("cutover_kit.hooks.levers.router_for_plan", lambda plan: routers_for.append(plan.router) or world)
    world.routers_for = routers_for
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"ti": ti, "run_id": "scheduled__2026-12-07T19:05:00+00:00"})
    monkeypatch.setattr(gate_watchdog, "connected_levers", lambda plan=None: Levers(world, world.open_store, world.reports))
    monkeypatch.setattr(gate_watchdog, "app_reports", world.reports)
    monkeypatch.setattr("cutover_kit.actions.flags.app_differences", lambda desired, backend, reports: [])
    return world


def heartbeat(silent_for: float, flag_backend: str | None = "unleash") -> GateHeartbeat:
    now = time.time()
    return GateHeartbeat.of(dag_id="cutover", run_id=RUN, step="25 %", gate_started_at=now - 200, at=now - silent_for,
                            poll_interval=1.0, green_percent=25.0, verdict="PASS", decision=GateDecision.CONTINUE,
                            line="Hold at 25 %: PASS", flag_backend=flag_backend, progress=GateProgress(polls=90))


def test_a_silent_gate_is_rolled_back_flags_first_with_its_own_reason_and_recorded(world, caplog):
    world.heartbeat = heartbeat(silent_for=47)
    with caplog.at_level(logging.INFO):
        result = gate_watchdog.watch_gates()
    line = f"Dead-man: gate of cutover/{RUN} silent for 47 s (limit 13 s) at 25 %; flags -> Rails, traffic -> blue"
    assert result["rolled_back"] is True and result["line"] == line and line in caplog.text
    # The stop first (the cutover must not climb again), then flags in the plan's store (named by the
    # heartbeat), then traffic.
    assert world.calls == ["latch", "flags unleash", "traffic 0"]
    [stop] = world.latched
    assert (stop.reason, stop.requested_by, stop.source_run_id) == (line, "gate_watchdog", "scheduled__2026-12-07T19:05:00+00:00")
    assert world.flags == FlagState.rails() and world.weights.green == 0
    [outcome] = world.recorded
    assert (outcome.outcome, outcome.dag_id, outcome.reason) == (ROLLED_BACK, "gate_watchdog", line)
    assert result["outcome_recorded"] is True and result["decided_at"] <= result["flags_restored_at"] <= result["traffic_restored_at"]
    assert "Traffic back on blue" in caplog.text


def test_a_live_gate_is_left_alone(world):
    world.heartbeat = heartbeat(silent_for=2)
    result = gate_watchdog.watch_gates()
    assert result["rolled_back"] is False and "alive" in result["line"]
    assert world.calls == [] and world.recorded == [] and world.latched == []


def test_a_step_whose_gate_never_reported_rolls_back_in_the_store_the_apps_evaluate(world):
    result = gate_watchdog.watch_gates()  # no heartbeat at all; the step set its weights 300 s ago
    assert result["rolled_back"] is True and "its gate never reported" in result["line"]
    assert world.calls == ["latch", "flags file", "traffic 0"]


def test_a_finished_run_is_not_the_watchdog_s_business(world):
    world.heartbeat, world.run_state = heartbeat(silent_for=600), "success"
    assert gate_watchdog.watch_gates()["rolled_back"] is False and world.calls == []


@pytest.mark.parametrize("status, rolls_back", [(404, False), (500, True)])
def test_a_run_this_airflow_does_not_know_is_not_running_but_an_unreadable_state_counts_as_running(world, status, rolls_back):
    class ServerResponseError(Exception):
        response = SimpleNamespace(status_code=status)

    def state_of(dag_id, run_id):
        raise ServerResponseError("Server returned error")
    world.heartbeat, world.state_of = heartbeat(silent_for=47), state_of
    result = gate_watchdog.watch_gates()
    assert result["rolled_back"] is rolls_back
    if not rolls_back:
        assert result["line"] == f"Cutover cutover/{RUN} is not found in this Airflow, not running: its gates are over (green at 25 %)"


def test_an_unreadable_state_touches_nothing(world):
    world.heartbeat, world.state_broken = heartbeat(silent_for=600), True
    with pytest.raises(AirflowException, match="cannot tell whether a gate is silent, nothing done: cutover state"):
        gate_watchdog.watch_gates()
    assert world.calls == []


def test_a_rollback_that_cannot_reach_the_router_fails_with_the_reason_and_records_nothing(world, monkeypatch):
    monkeypatch.setattr(gate_watchdog, "restore_blue_now", functools.partial(restore_blue_now, traffic_deadline_seconds=0.3))
    world.heartbeat, world.router_refuses = heartbeat(silent_for=47), True
    with pytest.raises(AirflowException, match=r"Dead-man: gate of .* silent for 47 s .*; rollback NOT verified: traffic "
                                               r"NOT back on blue \(router not set back to blue after \d+ attempt"):
        gate_watchdog.watch_gates()
    assert world.calls[:2] == ["latch", "flags unleash"] and world.calls.count("traffic 0") >= 2  # retried within its deadline
    assert world.recorded == []


def test_a_stop_that_cannot_be_latched_still_rolls_back_then_fails_saying_so(world):
    world.heartbeat, world.latch_broken = heartbeat(silent_for=47), True
    with pytest.raises(AirflowException, match="rolled back and verified, but the emergency stop was NOT latched"):
        gate_watchdog.watch_gates()
    assert world.calls == ["latch", "flags unleash", "traffic 0"] and world.weights.green == 0
    assert [outcome.outcome for outcome in world.recorded] == [ROLLED_BACK]


def test_the_router_comes_from_the_named_plan_and_an_unknown_plan_touches_nothing(world):
    world.heartbeat = heartbeat(silent_for=47)
    gate_watchdog.watch_gates(router_plan="kubernetes")
    assert world.routers_for == ["gateway_api"]
    world.calls.clear()
    with pytest.raises(AirflowFailException, match="cannot tell which router to read, nothing done"):
        gate_watchdog.watch_gates(router_plan="no-such-plan")
    assert world.calls == []
