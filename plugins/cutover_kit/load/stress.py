"""The stress and recovery phase of stage 6, judged: how a color fails past its knee (errors or
latency) and whether it comes back under light load, and how long that took. Pure.

The phase runs in the same Locust run as the step load (cutover_kit.load.profile.StressPhase):
`users` past the last step for `seconds`, then `recovery_users` for `recovery_seconds`. Both are
judged against the knee's SLO (cutover_kit.load.knee.LoadSLO):

* failure mode of the stress step: ``errors`` (error ratio over the SLO), ``latency`` (p95 over
  it), ``errors and latency``, ``held`` (within the SLO even there: the stress was not past this
  color's knee) or ``no data`` (no request completed: the app hung, or the request cap ended the
  run first).
* recovered: the last RECOVERY_HOLD_SECONDS seconds of the recovery phase each completed requests
  within the SLO. Recovery time: from the phase's start to the end of the first second of that
  final good stretch. A second with no completed request is not good (an app that hangs
  completes none).

A green that does not recover while blue does halts the stage: after a traffic spike in
production it would stay broken until someone restarts it, which blue (the reference) does not
need; a green whose recovery was not measured (the request cap ended its run first) halts too,
naming the field to raise. When neither recovers, the finding is recorded and logged but does not halt: green is no
worse than the app it replaces (the same "green no worse than blue" rule as stage 7), and the
capacity rules already judge green's knee.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cutover_kit.load.history import SecondFigures, StepFigures
from cutover_kit.load.knee import Knee, LoadSLO

RECOVERY_HOLD_SECONDS = 2
ERRORS, LATENCY, BOTH, HELD, NO_DATA = "errors", "latency", "errors and latency", "held", "no data"


@dataclass(frozen=True)
class StressOutcome:
    failure_mode: str
    users: int | None
    rate_rps: float | None
    p95_ms: float | None
    error_ratio: float | None
    description: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Recovery:
    # None: not measured (the request cap ended the run before the recovery phase).
    recovered: bool | None
    recovery_seconds: int | None
    users: int | None
    last_p95_ms: float | None
    last_error_ratio: float | None
    description: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _within(p95_ms: float | None, error_ratio: float | None, slo: LoadSLO) -> bool:
    return p95_ms is not None and error_ratio is not None and p95_ms <= slo.max_p95_ms and error_ratio <= slo.max_error_ratio


def classify_failure(stress: StepFigures | None, slo: LoadSLO, knee: Knee | None = None) -> StressOutcome:
    """How the color behaved at the stress step, with a one-line description such as
    "latency: p95 840 ms at 48 users, errors 0.2 %, 130 rps (knee 140 rps)"."""
    if stress is None or not stress.requests or stress.p95_ms is None:
        users = stress.users if stress else None
        return StressOutcome(NO_DATA, users, None, None, None,
                             "no data: no request completed during the stress step" + (f" at {users} users" if users else "")
                             + " (the app hung, or the request cap ended the run first)")
    errors = (stress.error_ratio or 0) > slo.max_error_ratio
    slow = stress.p95_ms > slo.max_p95_ms
    mode = BOTH if errors and slow else ERRORS if errors else LATENCY if slow else HELD
    knee_text = f" (knee {knee.knee_rps:g} rps)" if knee is not None else ""
    figures = (f"p95 {stress.p95_ms:g} ms at {stress.users} users, errors {100 * (stress.error_ratio or 0):.1f} %,"
               f" {stress.rate_rps:g} rps{knee_text}")
    if mode == HELD:
        description = f"held: {figures}, within the SLO (p95 <= {slo.max_p95_ms:g} ms, errors <= {slo.max_error_ratio:.1%})"
    else:
        description = f"{mode}: {figures}"
    return StressOutcome(mode, stress.users, stress.rate_rps, stress.p95_ms, stress.error_ratio, description)


def judge_recovery(seconds: Sequence[SecondFigures], slo: LoadSLO, hold_seconds: int = RECOVERY_HOLD_SECONDS,
                   capped_at: int | None = None) -> Recovery:
    """Recovered when the last `hold_seconds` seconds are each within the SLO; the recovery time
    is the offset (from the recovery phase's start) of the first second of the final good run.
    `capped_at`: the request cap, when the run reached it (then a missing recovery is "not
    measured", recovered None, rather than "not recovered")."""
    if not seconds and capped_at is not None:
        return Recovery(None, None, None, None, None, f"not measured: the request cap ({capped_at}) ended the run before"
                                                      " the recovery phase; raise load_test.max_requests")
    if not seconds:
        return Recovery(False, None, None, None, None, "not recovered: no second of the recovery phase was recorded")
    good = [_within(second.p95_ms, second.error_ratio, slo) for second in seconds]
    last = seconds[-1]
    users = last.users  # the recovery load (the first row may still count the stress's users leaving)
    tail = 0
    for ok in reversed(good):
        if not ok:
            break
        tail += 1
    if tail >= min(hold_seconds, len(seconds)) and tail > 0:
        first_good = seconds[len(seconds) - tail]
        took = max(first_good.offset_seconds, 1)
        return Recovery(True, took, users, last.p95_ms, last.error_ratio,
                        f"recovered within {took} s at {users} users (last second p95 {last.p95_ms:g} ms, errors"
                        f" {100 * (last.error_ratio or 0):.1f} %)")
    worst = "no request completed" if not last.requests else (
        f"p95 {last.p95_ms:g} ms, errors {100 * (last.error_ratio or 0):.1f} %" if last.p95_ms is not None else "no p95")
    span = seconds[-1].offset_seconds
    return Recovery(False, None, users, last.p95_ms, last.error_ratio,
                    f"not recovered after {span} s at {users} users (last second: {worst}; SLO p95 <= {slo.max_p95_ms:g} ms,"
                    f" errors <= {slo.max_error_ratio:.1%}, for {hold_seconds} s)")


def stress_block(outcome: StressOutcome, recovery: Recovery) -> dict[str, Any]:
    """The per-color fields added to the `load_test` summary: `stress`, `recovered`,
    `recovery_seconds`, `recovery`."""
    return {"stress": outcome.as_dict(), "recovered": recovery.recovered, "recovery_seconds": recovery.recovery_seconds,
            "recovery": recovery.as_dict()}


def recovery_halt(blocks: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The halt reason when green did not recover from stress and blue did (or blue could not be
    measured, so there is no evidence green is no worse); None otherwise."""
    green, blue = blocks.get("green"), blocks.get("blue")
    if green is None or green.get("recovered"):
        return None
    if green.get("recovered") is None:  # never passes by default: a recovery not shown is not a recovery
        return f"Halt before traffic: green's recovery from stress was {green['recovery']['description']}"
    if blue is not None and blue.get("recovered") is False and blue["recovery"].get("users") is not None:
        return None  # neither recovers: green is no worse than blue (logged as a finding by the caller)
    reference = (f"blue {blue['recovery']['description']}" if blue is not None and blue.get("recovered")
                 else "blue has no recovery figures to compare with")
    return (f"Halt before traffic: green did not recover from stress ({green['stress']['description']}):"
            f" {green['recovery']['description']}; {reference}")
