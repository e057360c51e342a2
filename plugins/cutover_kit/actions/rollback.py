"""The reflex rollback, shared by the gate trigger, the stage-11 smoke checks and the gate watchdog,
in the plan's order: 1. flags -> Rails, verified in the store and every app (green forwards every
feature to blue); 2. traffic -> 100 % blue, read back. Each level is timed (``*_restored_at``) so
the log says how long after the decision it held, and each has its own deadline:

- Flags get a head start of ``flags_head_start_seconds`` (5 s): when the store answers, as it does
  in well under a second, flags are on Rails before traffic moves, the plan's order. A flag store
  that hangs cannot hold the traffic level longer than that: traffic starts at the head start's
  end, while the flag level keeps trying in its own thread until ``flags_deadline_seconds`` (15 s
  from the start). Why not strictly one after the other: a hanging Unleash or an unreadable flag
  file would then delay the traffic rollback by its whole timeout (unbounded before), and traffic
  is what stops users from reaching a broken green; why not fully concurrent: when both answer,
  flags first keeps features on Rails for users still routed to green during the weight change.
- Traffic retries a router that refuses or cannot be reached (HAProxy's runtime API down, a
  restart) with a short backoff until ``traffic_deadline_seconds`` (60 s, the brief's traffic
  budget). Each attempt is bounded by the router client's own socket timeouts (2 s per command);
  an attempt that hangs beyond that anyway is abandoned in its thread and reported.

:func:`restore_blue_now` never raises: a level that did not verify is reported as
``flags_restore_error`` / ``traffic_restore_error``; :func:`rollback_failure` turns the facts into
the one clear reason a caller fails with (:class:`RollbackNotVerified`)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from cutover_kit.actions.flags import OpenStore, ReadAppReports, flags_to_rails_now

log = logging.getLogger(__name__)

FLAGS_HEAD_START_SECONDS = 5.0
FLAGS_DEADLINE_SECONDS = 15.0
TRAFFIC_DEADLINE_SECONDS = 60.0
TRAFFIC_RETRY_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)  # then every 2 s until the deadline
# One attempt is up to six runtime-API commands (read both weights, set both, read both back), each
# bounded by the client's 2 s socket timeout: how long the last one, started just before the
# deadline, is waited for before it is abandoned.
TRAFFIC_LAST_ATTEMPT_SECONDS = 12.0


class Router(Protocol):
    """What the rollback needs of the router (HAProxyHook, GatewayAPIHook and their routers qualify)."""

    def set_green_percent(self, percent: int) -> Any:  # returns RouterWeights, read back
        ...


@dataclass(frozen=True)
class Levers:
    """The clients a rollback pulls, built by the caller from its hooks (``hooks.levers``)."""

    router: Router
    open_flag_store: OpenStore
    read_app_reports: ReadAppReports


class RollbackNotVerified(RuntimeError):
    """A level of the rollback did not verify within its deadline; the message says which and why."""


class _Level:
    """One rollback level in a daemon thread: the caller waits for it only as long as it decides,
    and a level that hangs for good never keeps the process (an Airflow task, the triggerer) alive."""

    def __init__(self, name: str, work: Callable[[], dict[str, Any]]) -> None:
        self.facts: dict[str, Any] | None = None
        self._done = threading.Event()

        def run() -> None:
            try:
                self.facts = work()
            except BaseException as error:  # noqa: BLE001 - reported by wait(); the other level goes on
                self.facts = {"error": f"{type(error).__name__}: {error}"}
            finally:
                self._done.set()

        threading.Thread(target=run, name=f"rollback-{name}", daemon=True).start()

    def wait(self, seconds: float) -> bool:
        return self._done.wait(max(0.0, seconds))


def traffic_to_blue_within(router: Router, deadline_seconds: float = TRAFFIC_DEADLINE_SECONDS,
                           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Traffic -> 100 % blue, read back, retried until `deadline_seconds` pass. Never raises."""
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            weights = router.set_green_percent(0)
        except Exception as error:  # noqa: BLE001 - retried, then reported
            spent = time.monotonic() - started
            remaining = deadline_seconds - spent
            if remaining <= 0:
                reason = (f"router not set back to blue after {attempt} attempt(s) in {spent:.1f} s "
                          f"(deadline {deadline_seconds:g} s); last: {type(error).__name__}: {error}")
                log.error("Traffic -> blue FAILED: %s", reason)
                return {"traffic_restore_error": reason, "traffic_attempts": attempt}
            pause = min(TRAFFIC_RETRY_BACKOFF_SECONDS[min(attempt, len(TRAFFIC_RETRY_BACKOFF_SECONDS)) - 1], remaining)
            log.warning("Traffic -> blue attempt %d failed (%s: %s); retrying in %.1f s, %.0f s left of %g s",
                        attempt, type(error).__name__, error, pause, remaining, deadline_seconds)
            sleep(pause)
            continue
        if attempt > 1:
            log.info("Traffic -> blue verified on attempt %d, %.1f s after the first", attempt, time.monotonic() - started)
        return {"traffic_restored_at": time.time(), "weights_after_rollback": weights.to_dict(), "traffic_attempts": attempt}


def restore_blue_now(levers: Levers, flag_backend: str | None, *,
                     flags_head_start_seconds: float = FLAGS_HEAD_START_SECONDS,
                     flags_deadline_seconds: float = FLAGS_DEADLINE_SECONDS,
                     traffic_deadline_seconds: float = TRAFFIC_DEADLINE_SECONDS) -> dict[str, Any]:
    """Both levels; `flag_backend` None skips the flag level (the caller could not tell the store).
    Never raises: a failed level is reported as ``flags_restore_error`` / ``traffic_restore_error``.
    Returns after the traffic level ends and the flag level ended or reached its deadline."""
    if not 0 < flags_head_start_seconds <= flags_deadline_seconds or traffic_deadline_seconds < 0:
        raise ValueError(f"rollback deadlines must satisfy 0 < flags head start ({flags_head_start_seconds!r}) <= flags "
                         f"deadline ({flags_deadline_seconds!r}) and traffic deadline >= 0 ({traffic_deadline_seconds!r})")
    started = time.monotonic()
    facts: dict[str, Any] = {}
    flags = None
    if flag_backend:
        flags = _Level("flags", lambda: flags_to_rails_now(flag_backend, levers.open_flag_store, levers.read_app_reports))
        if not flags.wait(flags_head_start_seconds):
            log.warning("Flags -> Rails: the %s flag store has not answered in %g s; traffic goes back to blue now, "
                        "the flag level keeps trying until %g s", flag_backend, flags_head_start_seconds,
                        flags_deadline_seconds)
            facts["flags_overtaken"] = True
    # The traffic level gets its own thread too: its last attempt may start just before the deadline
    # and is bounded by the router client's socket timeout; one that hangs past that is abandoned.
    traffic = _Level("traffic", lambda: traffic_to_blue_within(levers.router, traffic_deadline_seconds))
    if traffic.wait(traffic_deadline_seconds + TRAFFIC_LAST_ATTEMPT_SECONDS):
        facts.update(_named(traffic.facts, "traffic_restore_error"))
    else:
        facts["traffic_restore_error"] = f"router did not answer within the {traffic_deadline_seconds:g} s traffic deadline"
        log.error("Traffic -> blue FAILED: %s", facts["traffic_restore_error"])
    if flags is not None:
        if flags.wait(flags_deadline_seconds - (time.monotonic() - started)):
            facts.update(_named(flags.facts, "flags_restore_error"))
        else:
            facts["flags_restore_error"] = (f"the {flag_backend} flag store did not answer within its "
                                            f"{flags_deadline_seconds:g} s deadline")
            log.error("Flags -> Rails NOT verified: %s", facts["flags_restore_error"])
    return facts


def _named(facts: dict[str, Any] | None, error_key: str) -> dict[str, Any]:
    """A level's facts, with an unexpected exception of its thread under the level's error key."""
    facts = dict(facts or {"error": "the level ended without facts"})
    if "error" in facts:
        facts[error_key] = facts.pop("error")
    return facts


def rollback_failure(facts: dict[str, Any]) -> str | None:
    """Why the rollback is not verified (one clear sentence), or None when both levels verified."""
    problems = []
    if "traffic_restore_error" in facts or ("traffic_restored_at" not in facts and "weights_after_rollback" not in facts):
        problems.append(f"traffic NOT back on blue ({facts.get('traffic_restore_error', 'no result')})")
    if "flags_restore_error" in facts:
        problems.append(f"flags NOT verified on Rails ({facts['flags_restore_error']})")
    return "; ".join(problems) or None


def require_verified(facts: dict[str, Any]) -> None:
    """Raise RollbackNotVerified with the reason when a level did not verify."""
    failure = rollback_failure(facts)
    if failure:
        raise RollbackNotVerified(f"Rollback NOT verified: {failure}")


def reflex_lines(result: dict[str, Any]) -> list[str]:
    """One line per rollback level, timed from the decision (for the task or trigger log)."""
    decided = result.get("decided_at")
    lines = []
    if "flags_restored_at" in result:
        late = " (after traffic: the store missed its head start)" if result.get("flags_overtaken") else ""
        lines.append(f"Flags -> Rails {result['flags_restored_at'] - decided:.3f} s after the decision{late}, "
                     f"verified in {result.get('flags_store')} and every app ({result.get('flags_apps')})")
    elif "flags_restore_error" in result:
        lines.append(f"Flags -> Rails NOT verified: {result['flags_restore_error']}")
    if "traffic_restored_at" in result:
        attempts = result.get("traffic_attempts", 1)
        retried = f", on attempt {attempts}" if attempts > 1 else ""
        lines.append(f"Traffic back on blue {result['traffic_restored_at'] - decided:.3f} s after the decision "
                     f"(weights {result.get('weights_after_rollback')}, verified by read-back{retried})")
    elif "traffic_restore_error" in result:
        lines.append(f"Traffic rollback failed: {result['traffic_restore_error']}")
    return lines


def log_reflex(result: dict[str, Any], logger: Any = None) -> None:
    for line in reflex_lines(result):
        (logger or log).info(line)
