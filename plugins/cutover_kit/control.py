"""The shared cutover state: an emergency stop that every cutover step and gate obeys.

The `emergency_rollback` DAG latches a stop (who, when, why). From that moment the `cutover` DAG
stops advancing: each traffic step checks the stop before it changes a weight, each gate checks
it on every poll and halts, promotion refuses, and the run ends as rolled back with the
operator's reason. The stop stays latched until an operator starts a new cutover with
``acknowledge_emergency_stop`` set: a cutover never re-promotes by itself.

Pure on purpose: the stop's shape, its validation and the lines it produces. Storage is in
:mod:`cutover_kit.hooks.cutover_state`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from cutover_kit.runbooks import with_runbook

REASON_MIN_CHARS = 3
REASON_MAX_CHARS = 500


class CutoverStateError(RuntimeError):
    """The shared cutover state cannot be read or written, or holds something unreadable."""


def validate_reason(reason: Any) -> str:
    """The operator's reason, stripped; a clear ValueError when it is missing or unusable."""
    if reason is None:
        raise ValueError("an emergency rollback needs a reason: trigger it with conf {\"reason\": \"...\"}")
    if not isinstance(reason, str):
        raise ValueError(f"reason must be text, got {type(reason).__name__}")
    text = " ".join(reason.split())
    if len(text) < REASON_MIN_CHARS:
        raise ValueError(f"reason is too short ({len(text)} characters after trimming); say why you roll back")
    if len(text) > REASON_MAX_CHARS:
        raise ValueError(f"reason is too long ({len(text)} > {REASON_MAX_CHARS} characters)")
    return text


@dataclass(frozen=True)
class EmergencyStop:
    reason: str
    requested_by: str  # the operator (Airflow user) or "unknown"
    requested_at: float  # epoch seconds
    source_run_id: str  # the emergency_rollback run that latched it

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", validate_reason(self.reason))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> EmergencyStop:
        try:
            data = json.loads(raw)
            return cls(str(data["reason"]), str(data["requested_by"]), float(data["requested_at"]),
                       str(data["source_run_id"]))
        except (ValueError, KeyError, TypeError) as error:
            raise CutoverStateError(f"emergency stop record is unreadable ({error}): {raw[:200]!r}") from error

    def describe(self) -> str:
        at = datetime.fromtimestamp(self.requested_at, tz=timezone.utc).strftime("%H:%M:%S UTC")
        return f"emergency rollback by {self.requested_by} at {at} ({self.source_run_id}): {self.reason}"


def emergency_halt_line(step_label: str, stop: EmergencyStop) -> str:
    """The one line a step, gate or verdict logs when it stops for an operator."""
    return with_runbook(f"Halt at {step_label}: {stop.describe()}")


def refusal_line(action: str, stop: EmergencyStop) -> str:
    return f"Refusing to {action}: {stop.describe()}"
