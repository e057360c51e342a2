"""The shared cutover state in real Redis, and the SLO gate obeying an emergency stop mid-bake."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from cutover_kit.control import CutoverStateError, EmergencyStop
from cutover_kit.hooks.cutover_state import EMERGENCY_STOP_KEY, CutoverStateHook
from cutover_kit.hooks.haproxy import HAProxyHook
from cutover_kit.plan import load_plan
from cutover_kit.triggers.slo_gate import SLOGateTrigger
from sandbox.traffic import TrafficGenerator

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def connections(sandbox, use_connections):
    use_connections(sandbox)
    CutoverStateHook().clear_emergency_stop()
    yield
    use_connections(sandbox)  # a test may have broken some
    CutoverStateHook().clear_emergency_stop()
    HAProxyHook().set_green_percent(0)


@pytest.fixture
def redis_down(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 9}))


def stop(reason: str = "pager: checkout errors reported by support", at: float | None = None) -> EmergencyStop:
    return EmergencyStop(reason, "alice", at or time.time(), "manual__emergency")


def test_latch_read_clear_round_trip_and_the_first_reason_stands():
    hook = CutoverStateHook()
    assert hook.emergency_stop() is None
    first = hook.latch_emergency_stop(stop("first operator's reason"))
    second = hook.latch_emergency_stop(stop("second operator's reason"))
    assert first == second == hook.emergency_stop() and first.reason == "first operator's reason"
    assert hook.clear_emergency_stop() == first and hook.emergency_stop() is None
    assert hook.clear_emergency_stop() is None  # clearing twice is clearing once


def test_progress_is_absolute():
    hook = CutoverStateHook()
    hook.record_progress("manual__1", "5 %")
    hook.record_progress("manual__1", "25 %")
    assert {k: v for k, v in hook.progress().items() if k != "at"} == {"run_id": "manual__1", "step": "25 %"}


def test_unreadable_record_and_unreachable_redis_are_clear_errors(redis_down):
    with pytest.raises(CutoverStateError, match=r"cutover state \(redis_default\) unavailable while reading the emergency stop"):
        CutoverStateHook().emergency_stop()


def test_garbage_in_the_key_is_named(sandbox):
    CutoverStateHook().get_conn().set(EMERGENCY_STOP_KEY, "not json")
    with pytest.raises(CutoverStateError, match="emergency stop record is unreadable"):
        CutoverStateHook().emergency_stop()


def test_step_refuses_to_advance_while_stopped_and_when_state_unknown(monkeypatch):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from cutover_kit.stages._shared import ensure_not_stopped

    ensure_not_stopped("move green to 25 %")  # nothing latched: passes
    CutoverStateHook().latch_emergency_stop(stop())
    with pytest.raises(AirflowFailException, match=r"Refusing to move green to 25 %: emergency rollback by alice .*pager"):
        ensure_not_stopped("move green to 25 %")
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": 9}))
    with pytest.raises(AirflowException, match="Refusing to move green to 25 %: cutover state"):
        ensure_not_stopped("move green to 25 %")


class PlanOnlyTI:
    """The one thing a step's flag task asks its task instance for: the plan stage 1 validated."""

    def __init__(self, plan: dict) -> None:
        self.plan = plan

    def xcom_pull(self, task_ids, key="return_value"):
        return self.plan if task_ids == "validate_plan" else None


def test_step_flags_refuse_while_stopped_and_leave_the_store_at_rails(sandbox):
    """A step that starts just after a latch must not turn green's features back on: the flag
    task is the step's first, so it checks the stop before it writes anything."""
    from airflow.sdk.exceptions import AirflowFailException
    from airflow.sdk.execution_time.context import set_current_context

    from cutover_kit.flags.flagd_file import FlagdFileStore
    from cutover_kit.flags.model import FlagState, apply_flags
    from cutover_kit.stages.traffic_migration import set_step_flags

    store = FlagdFileStore(sandbox.config.flags_file)
    apply_flags(store, FlagState.rails())  # where an emergency run leaves the flags
    plan = load_plan("rehearsal").to_dict()
    assert plan["flag_backend"] == "file"
    CutoverStateHook().latch_emergency_stop(stop("green corrupts invoices"))
    with set_current_context({"ti": PlanOnlyTI(plan)}):
        with pytest.raises(AirflowFailException,
                           match=r"Refusing to turn green's features on for 25 %: emergency rollback by alice .*green corrupts invoices"):
            set_step_flags(25, plan_task_id="validate_plan")
    assert store.read() == FlagState.rails()


def run_gate(percent: int, **plan_overrides) -> dict:
    plan = load_plan("rehearsal", {"bake_seconds": 8, "window_seconds": 4, "min_requests": 5, **plan_overrides}).to_dict()
    HAProxyHook().set_green_percent(percent)
    trigger = SLOGateTrigger(
        step_label=f"{percent} %", plan=plan, bake_seconds=plan["bake_seconds"], step_timeout_seconds=plan["step_timeout_seconds"],
        gate_started_at=time.time(), weights_set_at=time.time(), haproxy_conn_id="haproxy_default",
        state_conn_id="redis_default",
    )

    async def first_event():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(first_event(), timeout=60))


@pytest.fixture
def traffic(sandbox):
    generator = TrafficGenerator(sandbox.config.router_url, rps=40, max_seconds=60, seed=5)
    generator.start()
    yield generator
    generator.stop()


def test_gate_halts_within_a_poll_of_a_latch_and_puts_traffic_back(traffic):
    latched_at = {}

    def latch_later():
        time.sleep(2.0)
        latched_at["t"] = time.time()
        CutoverStateHook().latch_emergency_stop(stop("green corrupts invoices", latched_at["t"]))

    threading.Thread(target=latch_later, daemon=True).start()
    event = run_gate(50)
    assert event["status"] == "failed"
    assert event["line"].startswith("Halt at 50 %: emergency rollback by alice") and "green corrupts invoices" in event["line"]
    assert EmergencyStop.from_json(event["emergency_stop"]).reason == "green corrupts invoices"
    assert event["decided_at"] - latched_at["t"] < 2.5  # one 1 s poll plus a measurement
    assert event["weights_after_rollback"] == {"blue": 100, "green": 0}
    assert HAProxyHook().read_weights().green_percent == 0


def test_gate_never_promotes_when_the_state_is_unreadable(traffic, redis_down):
    event = run_gate(5, step_timeout_seconds=10)
    assert event["status"] == "inconclusive"
    assert "cutover state unreadable" in event["reason"]
    assert HAProxyHook().read_weights().green_percent == 0
