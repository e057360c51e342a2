"""The dead-man's switch: the gate's heartbeat, and the watchdog's decision when a gate goes silent.

Every SLO gate poll writes a :class:`GateHeartbeat` to the shared cutover state: who it is (dag,
run, step, when it started), when it last judged, how often it polls, the share it guards, its
last verdict and decision, and its :class:`~cutover_kit.gate.GateProgress`. A gate that decides
(promote, halt, timeout, its own error) writes a last heartbeat marked ended. The heartbeat serves
two readers:

- the ``gate_watchdog`` DAG, every minute: with traffic on green and the running cutover's gate
  silent for longer than :func:`silence_limit_seconds` (or a step whose gate never reported within
  :data:`GATE_START_ALLOWANCE_SECONDS`), it rolls back on its own (:func:`judge_gate_silence`).
  Without it, a lost triggerer leaves green unjudged until the step timeout plus the deferral
  margin (17 minutes in the default plan), and nobody rolls back.
- a restarted trigger, which resumes the same gate's progress instead of baking from zero
  (:func:`resumable_heartbeat`).

Pure: no I/O, no Airflow. Storage is in :mod:`cutover_kit.hooks.cutover_state`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from cutover_kit.control import CutoverStateError
from cutover_kit.gate import GateDecision, GateProgress, progress_from_dict, progress_to_dict
from cutover_kit.previous_cutover import RecordedOutcome

# A gate is silent after missing this many polls in a row...
SILENT_POLLS_ALLOWED = 3
# ... plus this margin, which covers one poll that waits on every timeout it can meet: the green
# and the blue measurement each stop at their first failed query (2 x 3 s Prometheus timeout), the
# emergency-stop read and the heartbeat write (2 x 2 s Redis timeout), and a busy triggerer's loop.
# A stalled Prometheus makes polls slow and INCONCLUSIVE, never silent: the gate still decides by its
# step timeout, so the watchdog must not pre-empt it.
SILENCE_MARGIN_SECONDS = 10.0
# From the step's weights being set (its progress record) to its gate's first heartbeat: the
# stage-11 smoke checks, the gate task being scheduled and deferring, the trigger being picked up
# and its first poll; about 2 s of overhead per task here, much more on a loaded scheduler.
GATE_START_ALLOWANCE_SECONDS = 120.0
# A gate that ended with a halt or timeout ran the reflex rollback itself (flags with their own
# deadline, then traffic retried for up to 60 s: cutover_kit.actions.rollback), and the rollback
# group re-asserts it. Green still holding its share this long after that decision means neither
# worked: the watchdog rolls back again.
ROLLBACK_GRACE_SECONDS = 90.0
# A restarted trigger resumes a heartbeat only if it was written within this many silence limits:
# older progress belongs to a gate the watchdog has already declared dead.
RESUME_MAX_SILENCE_LIMITS = 10

RUNNING = "running"


@dataclass(frozen=True)
class GateHeartbeat:
    dag_id: str
    run_id: str
    step: str  # the gate's step label ("25 %", "100 % standby")
    gate_started_at: float  # epoch seconds; with dag_id, run_id and step, names one deferral of one gate
    at: float  # epoch seconds of the poll this heartbeat reports
    poll_interval: float  # the plan's poll interval, seconds
    green_percent: float | None  # the share this gate guards, as its step set it (None: unknown)
    verdict: str  # last poll's verdict (PASS / FAIL / INCONCLUSIVE)
    decision: str  # a GateDecision value: "continue" while the gate judges
    line: str  # the gate's log line for that poll
    flag_backend: str | None  # the plan's flag store, for a rollback by someone else
    progress: dict[str, Any]  # GateProgress fields

    def __post_init__(self) -> None:
        GateDecision(self.decision)  # ValueError on an unknown decision
        progress_from_dict(self.progress)  # ValueError on a malformed progress
        for name in ("gate_started_at", "at", "poll_interval"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"heartbeat {name} is not a finite number: {value!r}")
        if self.poll_interval <= 0:
            raise ValueError(f"heartbeat poll_interval must be > 0, got {self.poll_interval!r}")

    @classmethod
    def of(cls, *, dag_id: str, run_id: str, step: str, gate_started_at: float, at: float, poll_interval: float,
           green_percent: float | None, verdict: str, decision: GateDecision, line: str, flag_backend: str | None,
           progress: GateProgress) -> GateHeartbeat:
        return cls(dag_id, run_id, step, gate_started_at, at, poll_interval, green_percent, verdict, decision.value,
                   line, flag_backend, progress_to_dict(progress))

    @property
    def ended(self) -> bool:
        return self.decision != GateDecision.CONTINUE.value

    @property
    def gate_progress(self) -> GateProgress:
        return progress_from_dict(self.progress)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> GateHeartbeat:
        try:
            data = json.loads(raw)
            return cls(str(data["dag_id"]), str(data["run_id"]), str(data["step"]), float(data["gate_started_at"]),
                       float(data["at"]), float(data["poll_interval"]),
                       None if data["green_percent"] is None else float(data["green_percent"]), str(data["verdict"]),
                       str(data["decision"]), str(data["line"]),
                       None if data["flag_backend"] is None else str(data["flag_backend"]), data["progress"])
        except (ValueError, KeyError, TypeError) as error:
            raise CutoverStateError(f"gate heartbeat is unreadable ({error}): {raw[:200]!r}") from error

    def describe_gate(self) -> str:
        return f"gate of {self.dag_id}/{self.run_id} at {self.step}"


def silence_limit_seconds(poll_interval: float) -> float:
    """How long a judging gate may go without a heartbeat before it counts as dead (1 s polls: 13 s)."""
    return SILENT_POLLS_ALLOWED * poll_interval + SILENCE_MARGIN_SECONDS


def resumable_heartbeat(heartbeat: GateHeartbeat | None, *, dag_id: str, run_id: str, step: str,
                        gate_started_at: float, now: float) -> tuple[GateHeartbeat | None, str]:
    """The heartbeat a (re)started trigger may continue from, and why (one log line).

    Only the same gate: same dag, run and step, and the same deferral (``gate_started_at``: a
    retried or cleared task starts a new gate, which must judge from zero). Only recent: written
    within :data:`RESUME_MAX_SILENCE_LIMITS` silence limits of now, and not in the future."""
    where = f"{dag_id}/{run_id} at {step}"
    if heartbeat is None:
        return None, f"Gate of {where} starts from zero: no persisted progress"
    if (heartbeat.dag_id, heartbeat.run_id, heartbeat.step, heartbeat.gate_started_at) != (dag_id, run_id, step, gate_started_at):
        return None, (f"Gate of {where} starts from zero: the persisted progress belongs to another gate "
                      f"({heartbeat.describe_gate()}, started at {heartbeat.gate_started_at:.3f})")
    age = now - heartbeat.at
    max_age = RESUME_MAX_SILENCE_LIMITS * silence_limit_seconds(heartbeat.poll_interval)
    if age < -1.0 or age > max_age:
        return None, (f"Gate of {where} starts from zero: its persisted progress is {age:.0f} s old "
                      f"(resumed only within {max_age:.0f} s)")
    progress = heartbeat.gate_progress
    return heartbeat, (f"Gate of {where} resumes its persisted progress written {age:.1f} s ago: {progress.polls} polls, "
                       f"{progress.consecutive_breaches} breach(es) in a row, {progress.healthy_seconds:.0f} s healthy"
                       + (f"; it had already decided: {heartbeat.line}" if heartbeat.ended else ""))


@dataclass(frozen=True)
class WatchdogDecision:
    roll_back: bool
    line: str  # the one log line that explains the decision
    flag_backend: str | None = None  # the flag store to flip, when the gate told it


def progress_record(data: Any) -> dict[str, Any] | None:
    """The cutover's progress record ({run_id, step, at, dag_id?}) checked, or None when there is none;
    CutoverStateError when it is unreadable (the watchdog then decides nothing rather than guess)."""
    if data is None:
        return None
    try:
        at = float(data["at"])
        record = {"run_id": str(data["run_id"]), "step": str(data["step"]), "at": at}
    except (KeyError, TypeError, ValueError) as error:
        raise CutoverStateError(f"cutover progress record is unreadable ({error}): {str(data)[:200]}") from error
    if not math.isfinite(at):
        raise CutoverStateError(f"cutover progress record has no usable time: {data!r}")
    if data.get("dag_id"):
        record["dag_id"] = str(data["dag_id"])
    return record


def _percent(value: float) -> str:
    return f"{value:.0f} %"


def judge_gate_silence(*, now: float, green_percent: float, progress: dict[str, Any] | None,
                       heartbeat: GateHeartbeat | None, last_outcome: RecordedOutcome | None,
                       run_state: str | None, start_allowance_seconds: float = GATE_START_ALLOWANCE_SECONDS,
                       rollback_grace_seconds: float = ROLLBACK_GRACE_SECONDS) -> WatchdogDecision:
    """Roll back when traffic is on green and the running cutover's gate is not watching it.

    Inputs: the router's green share (read back), the cutover's progress record ({run_id, step, at,
    dag_id}: written when a step sets its weights), the latest gate heartbeat, the last recorded
    outcome, and the state of the progress's DAG run (None when it could not be read: treated as
    running, the safe side for a switch that exists for when things are broken).

    Never fires when green has no traffic, when no cutover ever recorded progress, when the run
    ended (its outcome is recorded, or its DAG run is no longer running: a run that promoted leaves
    green at 100 % with no gate, which is normal), or when the gate ended with a promotion (the
    next step or the promotion follows)."""
    if green_percent <= 0:
        return WatchdogDecision(False, "Green gets 0 % of traffic: no gate to watch")
    if progress is None and heartbeat is None:
        return WatchdogDecision(False, f"Green at {_percent(green_percent)} but no cutover has recorded progress: "
                                       "not a cutover's traffic, nothing to watch")
    run_id = progress["run_id"] if progress is not None else heartbeat.run_id
    dag_id = (progress or {}).get("dag_id") or (heartbeat.dag_id if heartbeat is not None else "cutover")
    step = progress["step"] if progress is not None else heartbeat.step
    stepped_at = float(progress["at"]) if progress is not None else heartbeat.gate_started_at
    run = f"{dag_id}/{run_id}"
    if last_outcome is not None and (last_outcome.run_id == run_id or last_outcome.at >= stepped_at):
        return WatchdogDecision(False, f"Cutover {run} has ended ({last_outcome.describe()}): green at "
                                       f"{_percent(green_percent)} is its result, not an unwatched step")
    if run_state is not None and run_state != RUNNING:
        return WatchdogDecision(False, f"Cutover {run} is {run_state} in this Airflow, not running: its gates are "
                                       f"over (green at {_percent(green_percent)})")
    # The heartbeat belongs to this step when it is this run's and its gate started after the
    # step's weights were set (the standby watch's gate counts for the 100 % step).
    current = heartbeat if (heartbeat is not None and heartbeat.run_id == run_id
                            and heartbeat.gate_started_at >= stepped_at) else None
    flips = "flags -> Rails, traffic -> blue"
    if current is None:
        waited = now - stepped_at
        if waited <= start_allowance_seconds:
            return WatchdogDecision(False, f"Cutover {run} set green to {step} {waited:.0f} s ago; its gate has not "
                                           f"reported yet (allowed {start_allowance_seconds:.0f} s)")
        return WatchdogDecision(True, (f"Dead-man: cutover {run} set green to {step} {waited:.0f} s ago and its gate "
                                       f"never reported (limit {start_allowance_seconds:.0f} s) at "
                                       f"{_percent(green_percent)}; {flips}"))
    silent = now - current.at
    if current.ended:
        if current.decision == GateDecision.PROMOTE.value:
            return WatchdogDecision(False, f"Gate of {run} at {current.step} promoted {silent:.0f} s ago: "
                                           f"the run moves on (green at {_percent(green_percent)})")
        if silent <= rollback_grace_seconds:
            return WatchdogDecision(False, f"Gate of {run} at {current.step} decided {current.decision} {silent:.0f} s "
                                           f"ago; its rollback is under way (allowed {rollback_grace_seconds:.0f} s)")
        return WatchdogDecision(True, (f"Dead-man: gate of {run} decided {current.decision} at {current.step} "
                                       f"{silent:.0f} s ago but green still gets {_percent(green_percent)} "
                                       f"(limit {rollback_grace_seconds:.0f} s); {flips}"), current.flag_backend)
    limit = silence_limit_seconds(current.poll_interval)
    if silent <= limit:
        return WatchdogDecision(False, f"Gate of {run} at {current.step} alive: last poll {silent:.1f} s ago "
                                       f"(limit {limit:.0f} s), green at {_percent(green_percent)}")
    return WatchdogDecision(True, (f"Dead-man: gate of {run} silent for {silent:.0f} s (limit {limit:.0f} s) at "
                                   f"{_percent(green_percent)}; {flips}"), current.flag_backend)
