"""Write an absolute FlagState, verify it in the store, then wait until every app evaluates it
(as each app reports on ``GET /__flags``). The store and the app reports come from the caller
(``open_store(backend)``, ``read_app_reports()``), so this module needs no Connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from cutover_kit.flags.model import FlagState, FlagStore, apply_flags
from cutover_kit.flags.propagation import FlagsNotPropagated, app_differences, serving_summary

log = logging.getLogger(__name__)

# Apps re-read the flag file every ~50 ms and Unleash clients refresh every ~1 s: these bound the
# wait for "every app evaluates it" in tasks (which retry) and in the reflex (which must not delay
# the traffic rollback by much).
PROPAGATION_TIMEOUT_SECONDS = 10.0
REFLEX_PROPAGATION_TIMEOUT_SECONDS = 3.0
POLL_SECONDS = 0.02

OpenStore = Callable[[str], FlagStore]
ReadAppReports = Callable[[], Mapping[str, Any]]


def wait_until_apps_evaluate(desired: FlagState, backend: str, timeout_seconds: float,
                             read_app_reports: ReadAppReports) -> tuple[float, Mapping[str, Any]]:
    """Poll every app until each evaluates `desired`; (seconds waited, last reports) or FlagsNotPropagated."""
    started = time.monotonic()
    while True:
        reports = read_app_reports()
        differences = app_differences(desired, backend, reports)
        waited = time.monotonic() - started
        if not differences:
            return waited, reports
        if waited >= timeout_seconds:
            raise FlagsNotPropagated(differences, waited)
        time.sleep(POLL_SECONDS)


def apply_everywhere(desired: FlagState, backend: str, open_store: OpenStore, read_app_reports: ReadAppReports,
                     timeout_seconds: float = PROPAGATION_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Write `desired`, verify it in the store, then in every app. Raises FlagStoreError subclasses."""
    started = time.monotonic()
    store = open_store(backend)
    apply_flags(store, desired)
    stored_at = time.time()
    waited, reports = wait_until_apps_evaluate(desired, backend, timeout_seconds, read_app_reports)
    return {
        "store": store.name,
        "flags": desired.as_flags(),
        "store_verified_at": stored_at,
        "verified_at": time.time(),
        "seconds": round(time.monotonic() - started, 3),
        "propagation_seconds": round(waited, 3),
        "apps": serving_summary(reports),
    }


def flags_to_rails_now(flag_backend: str, open_store: OpenStore, read_app_reports: ReadAppReports,
                       timeout_seconds: float = REFLEX_PROPAGATION_TIMEOUT_SECONDS) -> dict[str, Any]:
    """The first rollback lever: flags -> Rails, verified in the store and every app. Never raises,
    so the traffic lever always runs after it; the failure is reported in the facts instead."""
    try:
        facts = apply_everywhere(FlagState.rails(), flag_backend, open_store, read_app_reports, timeout_seconds)
    except Exception as error:  # noqa: BLE001 - the traffic rollback must still run; report, don't raise
        log.error("Flags -> Rails NOT verified (%s backend), traffic rollback goes on: %s", flag_backend, error)
        return {"flags_restore_error": f"{type(error).__name__}: {error}"}
    return {"flags_restored_at": facts["verified_at"], "flags_after_rollback": facts["flags"],
            "flags_store": facts["store"], "flags_apps": facts["apps"]}
