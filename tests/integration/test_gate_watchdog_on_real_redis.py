"""The dead-man's switch against the real sandbox: the gate heartbeat in real Redis, and the
watchdog task rolling back a silent gate through the real router, flag store and apps (the stop
latched, flags to Rails verified in every app, traffic to blue read back), then recording the outcome."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from cutover_kit.dead_man import GateHeartbeat
from cutover_kit.gate import GateDecision, GateProgress
from cutover_kit.hooks.cutover_state import GATE_HEARTBEAT_KEY, PROGRESS_KEY, CutoverStateHook
from cutover_kit.hooks.haproxy import HAProxyHook
from cutover_kit.previous_cutover import ROLLED_BACK

pytestmark = pytest.mark.timeout(180)

RUN = "manual__watchdog_it"


@pytest.fixture(autouse=True)
def connections(sandbox, use_connections, monkeypatch):
    use_connections(sandbox)
    ti = SimpleNamespace(dag_id="gate_watchdog", get_dagrun_state=lambda dag_id, run_id: "running")
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"ti": ti, "run_id": "scheduled__it"})
    CutoverStateHook().get_conn().delete(GATE_HEARTBEAT_KEY)
    CutoverStateHook().clear_emergency_stop()
    yield
    CutoverStateHook().get_conn().delete(GATE_HEARTBEAT_KEY)
    CutoverStateHook().clear_emergency_stop()
    HAProxyHook().set_green_percent(0)


def heartbeat(silent_for: float, flag_backend: str) -> GateHeartbeat:
    now = time.time()
    return GateHeartbeat.of(dag_id="cutover", run_id=RUN, step="25 %", gate_started_at=now - 60, at=now - silent_for,
                            poll_interval=1.0, green_percent=25.0, verdict="PASS", decision=GateDecision.CONTINUE,
                            line="Hold at 25 %: PASS", flag_backend=flag_backend,
                            progress=GateProgress(polls=50, passes=50, healthy_seconds=50.0, last_elapsed_seconds=59.0))


def test_heartbeat_round_trips_through_redis(sandbox):
    hook = CutoverStateHook()
    assert hook.gate_heartbeat() is None
    beat = heartbeat(1.0, sandbox.config.flag_backend)
    hook.write_gate_heartbeat(beat)
    assert hook.gate_heartbeat() == beat


def test_the_watchdog_leaves_a_live_gate_alone_and_rolls_back_a_silent_one(sandbox):
    from cutover_kit.stages import gate_watchdog

    state, router = CutoverStateHook(), HAProxyHook()
    router.set_green_percent(25)
    # The 25 % step set its weights two minutes ago; its gate started a minute ago (heartbeat()).
    state.get_conn().set(PROGRESS_KEY, json.dumps({"run_id": RUN, "step": "25 %", "at": time.time() - 120,
                                                   "dag_id": "cutover"}))
    state.write_gate_heartbeat(heartbeat(2.0, sandbox.config.flag_backend))
    quiet = gate_watchdog.watch_gates()
    assert quiet["rolled_back"] is False and "alive" in quiet["line"] and router.read_weights().green_percent == 25

    state.write_gate_heartbeat(heartbeat(47.0, sandbox.config.flag_backend))
    started = time.monotonic()
    result = gate_watchdog.watch_gates()
    seconds = time.monotonic() - started
    assert result["rolled_back"] is True
    assert result["line"] == (f"Dead-man: gate of cutover/{RUN} silent for 47 s (limit 13 s) at 25 %; "
                              "flags -> Rails, traffic -> blue")
    assert router.read_weights().green_percent == 0 and "flags_restore_error" not in result
    assert result["decided_at"] <= result["flags_restored_at"] <= result["traffic_restored_at"]
    stop = state.emergency_stop()  # the cutover stops advancing, with the dead-man's reason
    assert stop is not None and (stop.requested_by, stop.reason) == ("gate_watchdog", result["line"])
    last = state.last_outcome()
    assert (last.outcome, last.dag_id, last.reason) == (ROLLED_BACK, "gate_watchdog", result["line"])
    print(f"dead-man rollback: flags {result['flags_restored_at'] - result['decided_at']:.3f} s, traffic "
          f"{result['traffic_restored_at'] - result['decided_at']:.3f} s after the decision; task {seconds:.2f} s")
    # Green at 0 %: the next minute's run has nothing to watch.
    assert gate_watchdog.watch_gates()["line"] == "Green gets 0 % of traffic: no gate to watch"


def test_a_gate_beats_in_redis_and_its_restarted_trigger_delivers_the_same_decision(sandbox):
    """Real seams: a gate halted by a latched stop marks its heartbeat ended in Redis; the same
    trigger started again (as a triggerer would, from its serialized kwargs) delivers that decision
    without judging again."""
    import asyncio

    from cutover_kit.control import EmergencyStop
    from cutover_kit.plan import load_plan
    from cutover_kit.triggers.slo_gate import SLOGateTrigger

    plan = load_plan("rehearsal").to_dict()
    now = time.time()
    trigger = SLOGateTrigger(step_label="25 %", plan=plan, bake_seconds=plan["bake_seconds"],
                             step_timeout_seconds=plan["step_timeout_seconds"], gate_started_at=now, weights_set_at=now,
                             state_conn_id="redis_default", dag_id="cutover", run_id=RUN, green_percent=25.0)
    CutoverStateHook().latch_emergency_stop(EmergencyStop("integration: stop the gate", "alice", now, "manual__stop"))

    def first_event(gate: SLOGateTrigger) -> dict:
        async def run():
            async for event in gate.run():
                return event.payload
        return asyncio.run(asyncio.wait_for(run(), timeout=60))

    event = first_event(trigger)
    beat = CutoverStateHook().gate_heartbeat()
    assert event["status"] == "failed" and beat.ended and beat.decision == "failed"
    assert (beat.dag_id, beat.run_id, beat.step, beat.gate_started_at) == ("cutover", RUN, "25 %", now)
    assert beat.line == event["line"] and beat.flag_backend == plan["flag_backend"]

    CutoverStateHook().clear_emergency_stop()  # a re-judging gate would now find nothing to halt on
    restarted = SLOGateTrigger(**trigger.serialize()[1])
    again = first_event(restarted)
    assert again["status"] == "failed" and again["resumed"] is True
    assert again["line"] == f"{event['line']} (decided before the trigger restarted)"
