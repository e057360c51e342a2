"""May a new `cutover` run start, given what an earlier run left behind?

A second run of the DAG used to undo a finished cutover: its stage 8 drill refused (green already
had traffic), the failure routed to the rollback group, and production went silently back to
Rails. Stage 1 now asks this judge first, before anything changes. Two independent facts are
read: the router's weights (the truth about traffic) and the last outcome recorded in the shared
cutover state (the truth about intent: a promotion). Either one is enough to refuse, so a lost
Redis key or a hand-edited weight cannot hide a finished or half-done cutover.

An operator who means it passes ``allow_rerun_reason``: the run then starts over from blue on
purpose (stage 8 moves green's current share back to 0 % as its drill, timed and verified, and the
steps climb again), and the reason is logged beside what was found.

Pure: no I/O, no Airflow. Storage is in :mod:`cutover_kit.hooks.cutover_state`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from cutover_kit.control import CutoverStateError, validate_reason

# The outcomes a run records in the shared state, in the words of cutover_kit.outcome.
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
RECORDED_OUTCOMES = (PROMOTED, ROLLED_BACK)


@dataclass(frozen=True)
class RecordedOutcome:
    """What the last cutover (or emergency rollback) run that changed traffic ended with."""

    outcome: str  # one of RECORDED_OUTCOMES
    run_id: str
    dag_id: str
    at: float  # epoch seconds
    reason: str

    def __post_init__(self) -> None:
        if self.outcome not in RECORDED_OUTCOMES:
            raise CutoverStateError(f"unknown recorded outcome {self.outcome!r} (expected one of {RECORDED_OUTCOMES})")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> RecordedOutcome:
        try:
            data = json.loads(raw)
            return cls(str(data["outcome"]), str(data["run_id"]), str(data["dag_id"]), float(data["at"]),
                       str(data["reason"]))
        except (ValueError, KeyError, TypeError) as error:
            raise CutoverStateError(f"last-outcome record is unreadable ({error}): {raw[:200]!r}") from error

    def describe(self) -> str:
        at = datetime.fromtimestamp(self.at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.dag_id} run {self.run_id} ended {self.outcome} at {at}: {self.reason}"


@dataclass(frozen=True)
class RerunDecision:
    allowed: bool
    line: str  # the one log line that explains the decision
    starts_over: bool = False  # an earlier cutover's state is being overridden on purpose


def judge_previous_cutover(green_percent: float, last: RecordedOutcome | None,
                           rerun_reason: Any = None) -> RerunDecision:
    """Refuse a run that finds traffic already on green or the last cutover promoted, unless the
    operator gave a reason to start over. A blank or too-short reason is refused like a missing one
    would be ignored: ValueError, before anything happens."""
    findings = []
    if green_percent > 0:
        findings.append(f"the router already sends {green_percent:.0f} % of traffic to green (read back)")
    if last is not None and last.outcome == PROMOTED:
        findings.append(f"the last cutover promoted ({last.describe()})")
    reason = None if rerun_reason in (None, "") else validate_reason(rerun_reason)
    if not findings:
        before = f"; last recorded outcome: {last.describe()}" if last is not None else "; no earlier outcome recorded"
        line = f"No cutover in place: green gets 0 % of traffic{before}"
        if reason:
            line += f" (allow_rerun_reason given but not needed: {reason})"
        return RerunDecision(True, line)
    found = " and ".join(findings)
    if reason is None:
        return RerunDecision(False, (
            f"Cutover refused: {found}. A new run would undo it. To start over on purpose, trigger with "
            "allow_rerun_reason set to why; to go back to Rails, trigger emergency_rollback"))
    return RerunDecision(True, (
        f"Re-run on purpose: {found}. Reason given: {reason}. This run starts over from blue: stage 8 "
        "moves green's share back to 0 % as its drill (timed, verified), then the steps climb again"), starts_over=True)
