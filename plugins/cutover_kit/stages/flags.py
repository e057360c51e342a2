"""Stage 3 (feature flags) and the flag half of every traffic step and of the rollback.

Every task writes an absolute FlagState (never "turn one more flag on"), reads it back from the
store (apply_flags: a differing flag is named, never left silently), then waits until every app
evaluates it, as reported by the app itself on ``GET /__flags``. The store is chosen by the plan's
``flag_backend`` (cutover_kit.hooks.flags). The plan is pulled from XCom by task id, not passed
as an XComArg, so these tasks add no dependency edges that bypass the step chain.

``flags_to_rails_now`` is the flag half of the reflex rollback, shared by the gate trigger, the
smoke checks and the rollback group: it returns facts and never raises, so the traffic half always
runs after it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.flags.model import FlagState, FlagStoreError
from cutover_kit.flags.propagation import FlagsNotPropagated, app_differences, serving_summary
from cutover_kit.plan import CutoverPlan

log = logging.getLogger(__name__)

APP_CONN_IDS = ("app_blue", "app_green")
# Apps re-read the flag file every ~50 ms and Unleash clients refresh every ~1 s: these bound the
# wait for "every app evaluates it" in tasks (which retry) and in the reflex (which must not delay
# the traffic rollback by much).
PROPAGATION_TIMEOUT_SECONDS = 10.0
REFLEX_PROPAGATION_TIMEOUT_SECONDS = 3.0
POLL_SECONDS = 0.02


def plan_of_run(plan_task_id: str) -> CutoverPlan:
    from airflow.sdk import get_current_context

    plan = get_current_context()["ti"].xcom_pull(task_ids=plan_task_id)
    if not plan:
        raise AirflowFailException(f"Flags: no plan from {plan_task_id}; stage 1 must validate it first")
    return CutoverPlan.from_dict(plan)


def app_reports(conn_ids: tuple[str, ...] = APP_CONN_IDS, timeout_seconds: float = 1.0) -> dict[str, Any]:
    """Each app's GET /__flags answer (a dict), or why there is none (a string)."""
    from cutover_kit.hooks.service import ServiceHook

    reports: dict[str, Any] = {}
    for conn_id in conn_ids:
        probe = ServiceHook(conn_id, timeout_seconds=timeout_seconds).probe("GET", "/__flags")
        if probe.status == 200 and isinstance(probe.body, dict):
            reports[conn_id] = probe.body
        else:
            reports[conn_id] = probe.error or f"HTTP {probe.status}: {str(probe.body)[:120]}"
    return reports


def wait_until_apps_evaluate(desired: FlagState, backend: str, timeout_seconds: float,
                             conn_ids: tuple[str, ...] = APP_CONN_IDS) -> tuple[float, dict[str, Any]]:
    """Poll every app until each evaluates `desired`; (seconds waited, last reports) or FlagsNotPropagated."""
    started = time.monotonic()
    while True:
        reports = app_reports(conn_ids)
        differences = app_differences(desired, backend, reports)
        waited = time.monotonic() - started
        if not differences:
            return waited, reports
        if waited >= timeout_seconds:
            raise FlagsNotPropagated(differences, waited)
        time.sleep(POLL_SECONDS)


def apply_everywhere(desired: FlagState, backend: str, timeout_seconds: float = PROPAGATION_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Write `desired`, verify it in the store, then in every app. Raises FlagStoreError subclasses."""
    from cutover_kit.flags.model import apply_flags
    from cutover_kit.hooks.flags import flag_store

    started = time.monotonic()
    store = flag_store(backend)
    apply_flags(store, desired)
    stored_at = time.time()
    waited, reports = wait_until_apps_evaluate(desired, backend, timeout_seconds)
    return {
        "store": store.name,
        "flags": desired.as_flags(),
        "store_verified_at": stored_at,
        "verified_at": time.time(),
        "seconds": round(time.monotonic() - started, 3),
        "propagation_seconds": round(waited, 3),
        "apps": serving_summary(reports),
    }


def _applied(desired: FlagState, backend: str, what: str) -> dict[str, Any]:
    try:
        facts = apply_everywhere(desired, backend)
    except FlagStoreError as error:  # unreachable store, a flag that did not stick, an app that lags
        raise AirflowException(f"{what} not applied ({backend} backend): {error}") from error
    reason = (f"{what}: {desired.describe()}; read back from {facts['store']} and evaluated by every app "
              f"({facts['apps']}) in {facts['seconds']:.3f} s")
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, **facts}


def check_flag_store(plan_task_id: str) -> dict[str, Any]:
    """Stage 1: the plan's flag store answers with a well-formed state and every app reports its flags.
    Changes nothing; an unreachable, misconfigured or malformed store stops the run here."""
    from cutover_kit.hooks.flags import flag_store

    backend = plan_of_run(plan_task_id).flag_backend
    try:
        store = flag_store(backend)
        state = store.read()
    except FlagStoreError as error:
        raise AirflowException(f"Flag store not usable ({backend} backend): {error}") from error
    reports = app_reports()
    problems = [f"{app}: {report}" for app, report in reports.items() if isinstance(report, str)]
    problems += [f"{app} evaluates flags from {report.get('backend')!r}, the plan selects {backend!r}"
                 for app, report in reports.items()
                 if isinstance(report, dict) and report.get("evaluates_flags") and report.get("backend") != backend]
    if problems:
        raise AirflowFailException("Flags: apps not ready: " + "; ".join(problems))
    reason = f"Flag store {store.name} readable ({state.describe()}); apps: {serving_summary(reports)}"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "flags": state.as_flags()}


def ensure_rails_default(plan_task_id: str) -> dict[str, Any]:
    """Stage 3: every flag exists at the Rails-safe default, in the store and in every app."""
    plan = plan_of_run(plan_task_id)
    return _applied(FlagState.rails(), plan.flag_backend, "Flags at the Rails-safe default")


def set_step_flags(percent: int, plan_task_id: str) -> dict[str, Any]:
    """Before a traffic step raises the weight: features on in green, rollout at the step's share.

    The step's first task, so it obeys the emergency stop before anything is written: a step
    starting just after a latch must not turn green's features back on (possibly after the
    emergency run verified flags -> Rails)."""
    from cutover_kit.stages.emergency import ensure_not_stopped

    ensure_not_stopped(f"turn green's features on for {percent} %")
    plan = plan_of_run(plan_task_id)
    return {**_applied(FlagState.for_step(percent), plan.flag_backend, f"Flags for {percent} %"), "percent": percent}


def flags_to_rails_now(flag_backend: str, timeout_seconds: float = REFLEX_PROPAGATION_TIMEOUT_SECONDS) -> dict[str, Any]:
    """The first rollback lever: flags -> Rails, verified in the store and every app. Never raises."""
    try:
        facts = apply_everywhere(FlagState.rails(), flag_backend, timeout_seconds)
    except Exception as error:  # noqa: BLE001 - the traffic rollback must still run; report, don't raise
        log.error("Flags -> Rails NOT verified (%s backend), traffic rollback goes on: %s", flag_backend, error)
        return {"flags_restore_error": f"{type(error).__name__}: {error}"}
    return {"flags_restored_at": facts["verified_at"], "flags_after_rollback": facts["flags"],
            "flags_store": facts["store"], "flags_apps": facts["apps"]}


def flags_to_rails(plan_task_id: str) -> dict[str, Any]:
    """Rollback group, first lever: re-assert flags -> Rails and verify it everywhere, timed."""
    plan = plan_of_run(plan_task_id)
    return _applied(FlagState.rails(), plan.flag_backend, "Rollback level 1, flags -> Rails")
