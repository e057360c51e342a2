"""The reflex rollback, shared by the gate trigger and the stage-11 smoke checks, in the plan's
order: 1. flags -> Rails, verified in the store and every app (green forwards every feature to
blue); 2. traffic -> 100 % blue, read back. The second level runs whatever happened to the first,
and each level is timed (``*_restored_at``) so the log says how long after the decision it held."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from cutover_kit.actions.flags import OpenStore, ReadAppReports, flags_to_rails_now

log = logging.getLogger(__name__)


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


def restore_blue_now(levers: Levers, flag_backend: str | None) -> dict[str, Any]:
    """Both levels; `flag_backend` None skips the flag level (the caller could not tell the store).
    Never raises: a failed level is reported as ``flags_restore_error`` / ``traffic_restore_error``."""
    facts: dict[str, Any] = {}
    if flag_backend:
        facts.update(flags_to_rails_now(flag_backend, levers.open_flag_store, levers.read_app_reports))
    try:
        weights = levers.router.set_green_percent(0)
    except Exception as error:  # noqa: BLE001 - the rollback tasks retry; the failure itself must still be reported
        log.error("Reflex rollback failed, leaving it to the rollback tasks: %s", error)
        return {**facts, "traffic_restore_error": f"{type(error).__name__}: {error}"}
    return {**facts, "traffic_restored_at": time.time(), "weights_after_rollback": weights.to_dict()}


def reflex_lines(result: dict[str, Any]) -> list[str]:
    """One line per rollback level, timed from the decision (for the task or trigger log)."""
    decided = result.get("decided_at")
    lines = []
    if "flags_restored_at" in result:
        lines.append(f"Flags -> Rails {result['flags_restored_at'] - decided:.3f} s after the decision, "
                     f"verified in {result.get('flags_store')} and every app ({result.get('flags_apps')})")
    elif "flags_restore_error" in result:
        lines.append(f"Flags -> Rails NOT verified: {result['flags_restore_error']}")
    if "traffic_restored_at" in result:
        lines.append(f"Traffic back on blue {result['traffic_restored_at'] - decided:.3f} s after the decision "
                     f"(weights {result.get('weights_after_rollback')}, verified by read-back)")
    elif "traffic_restore_error" in result:
        lines.append(f"Traffic rollback failed: {result['traffic_restore_error']}")
    return lines


def log_reflex(result: dict[str, Any], logger: Any = None) -> None:
    for line in reflex_lines(result):
        (logger or log).info(line)
