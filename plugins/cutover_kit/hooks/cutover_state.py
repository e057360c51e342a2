"""CutoverStateHook: the shared cutover state (emergency stop, progress) kept in Redis.

Redis because every component must see a latch within one gate poll, including the triggerer
(which has no Airflow metadata session of its own), and because a single key SET is atomic and
absolute: latching twice is latching once. Connection ``redis_default``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from cutover_kit.control import CutoverStateError, EmergencyStop
from cutover_kit.dead_man import GateHeartbeat
from cutover_kit.hooks.redis_store import RedisHook
from cutover_kit.previous_cutover import RecordedOutcome

EMERGENCY_STOP_KEY = "cutover:emergency_stop"
PROGRESS_KEY = "cutover:progress"
LAST_OUTCOME_KEY = "cutover:last_outcome"
# One key: at most one gate judges at a time (the cutover DAG runs one run at a time, its steps one
# after another); the record names its dag, run, step and deferral, so readers check it is theirs.
GATE_HEARTBEAT_KEY = "cutover:gate_heartbeat"


class CutoverStateHook(RedisHook):
    hook_name = "Cutover state (Redis)"

    def _call(self, what: str, action):
        try:
            return action(self.get_conn())
        except CutoverStateError:
            raise
        except Exception as error:  # redis errors, connection lookup errors: one clear message
            raise CutoverStateError(f"cutover state ({self.redis_conn_id}) unavailable while {what}: "
                                    f"{type(error).__name__}: {error}") from error

    def emergency_stop(self) -> EmergencyStop | None:
        """The latched stop, or None. Raises CutoverStateError when Redis cannot answer: callers
        decide what unknown means (a step refuses to advance; a gate cannot pass that poll)."""
        raw = self._call("reading the emergency stop", lambda r: r.get(EMERGENCY_STOP_KEY))
        return None if raw is None else EmergencyStop.from_json(raw)

    def latch_emergency_stop(self, stop: EmergencyStop) -> EmergencyStop:
        """Latch `stop`, keeping an earlier latch (the first operator's reason stands), and return
        the stop now in force."""
        def latch(r) -> EmergencyStop:
            r.set(EMERGENCY_STOP_KEY, stop.to_json(), nx=True)
            raw = r.get(EMERGENCY_STOP_KEY)
            if raw is None:
                raise CutoverStateError("emergency stop did not persist (read back nothing)")
            return EmergencyStop.from_json(raw)
        return self._call("latching the emergency stop", latch)

    def clear_emergency_stop(self) -> EmergencyStop | None:
        """Remove the latch (an operator acknowledged it); returns what was cleared."""
        def clear(r) -> EmergencyStop | None:
            raw = r.getdel(EMERGENCY_STOP_KEY)
            try:
                return None if raw is None else EmergencyStop.from_json(raw)
            except CutoverStateError:  # an unreadable latch is still cleared: that is what was asked
                return None
        return self._call("clearing the emergency stop", clear)

    def record_progress(self, run_id: str, step_label: str, dag_id: str | None = None) -> None:
        """Where the running cutover is (absolute), so an emergency run can say what it interrupted and
        the gate watchdog knows which run's gate must be reporting."""
        value = json.dumps({"run_id": run_id, "step": step_label, "at": time.time(),
                            **({"dag_id": dag_id} if dag_id else {})})
        self._call("recording progress", lambda r: r.set(PROGRESS_KEY, value))

    def progress(self) -> dict[str, Any] | None:
        raw = self._call("reading progress", lambda r: r.get(PROGRESS_KEY))
        try:
            return None if raw is None else json.loads(raw)
        except ValueError:
            return None

    def record_outcome(self, outcome: RecordedOutcome) -> None:
        """What the last run that changed traffic ended with (absolute: the newest run wins).
        Stage 1 of the next cutover reads it, so a finished cutover is never undone by accident."""
        self._call("recording the outcome", lambda r: r.set(LAST_OUTCOME_KEY, outcome.to_json()))

    def last_outcome(self) -> RecordedOutcome | None:
        """The recorded outcome, or None. Raises CutoverStateError when Redis cannot answer or the
        record is unreadable: stage 1 refuses on an unknown rather than guess."""
        raw = self._call("reading the last outcome", lambda r: r.get(LAST_OUTCOME_KEY))
        return None if raw is None else RecordedOutcome.from_json(raw)

    def write_gate_heartbeat(self, heartbeat: GateHeartbeat) -> None:
        """The gate's latest poll (absolute SET: the newest poll wins)."""
        self._call("writing the gate heartbeat", lambda r: r.set(GATE_HEARTBEAT_KEY, heartbeat.to_json()))

    def gate_heartbeat(self) -> GateHeartbeat | None:
        """The latest gate heartbeat, or None. Raises CutoverStateError when Redis cannot answer or the
        record is unreadable."""
        raw = self._call("reading the gate heartbeat", lambda r: r.get(GATE_HEARTBEAT_KEY))
        return None if raw is None else GateHeartbeat.from_json(raw)
