"""Stages 8, 9, 10, 11 and 12: rollback drill, blue-green setup, traffic steps, smoke checks,
blue baseline. Each task sets absolute state (a weight, never "+20 %") so a cleared and re-run
task converges to the same place."""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.plan import CutoverPlan

log = logging.getLogger(__name__)

# The brief's budget for putting traffic back on blue; the drill fails if a real rollback would miss it.
TRAFFIC_ROLLBACK_BUDGET_SECONDS = 60.0


def rollback_drill(plan: dict[str, Any]) -> dict[str, Any]:
    """Put a little traffic on green, roll it back, verify by read-back, and time the rollback."""
    from cutover_kit.hooks.haproxy import HAProxyHook

    from cutover_kit.stages.emergency import ensure_not_stopped

    ensure_not_stopped("run the rollback drill")
    drill_percent = CutoverPlan.from_dict(plan).rollback_drill_percent
    router = HAProxyHook()
    before = router.read_weights()
    if before.green != 0:
        raise AirflowFailException(
            f"Rollback drill refused: green already has {before.green_percent:.0f} % of traffic "
            f"(weights {before.to_dict()}); the drill runs before any traffic moves"
        )
    try:
        router.set_green_percent(drill_percent)
    finally:
        started = time.perf_counter()
        after = router.set_green_percent(0)
        rollback_seconds = time.perf_counter() - started
    if rollback_seconds > TRAFFIC_ROLLBACK_BUDGET_SECONDS:
        raise AirflowFailException(
            f"Rollback drill too slow: {rollback_seconds:.1f} s > {TRAFFIC_ROLLBACK_BUDGET_SECONDS:.0f} s budget"
        )
    reason = (
        f"Rollback drill: {drill_percent} % -> 0 % green in {rollback_seconds * 1000:.1f} ms, "
        f"weights {after.to_dict()} verified by read-back"
    )
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "rollback_seconds": rollback_seconds}


def blue_green_setup() -> dict[str, Any]:
    """Both servers present and passing health checks in the router, green at 0 %."""
    from cutover_kit.hooks.haproxy import HAProxyHook

    router = HAProxyHook()
    states = router.server_states()
    not_up = {color: state for color, state in states.items() if not state.startswith("UP")}
    if not_up:
        raise AirflowException(f"Blue-green setup: router health checks not UP: {not_up}")
    weights = router.set_green_percent(0)
    reason = f"Blue-green ready: blue {states['blue']}, green {states['green']}, weights {weights.to_dict()}"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "weights": weights.to_dict()}


def set_traffic(percent: int) -> dict[str, Any]:
    from cutover_kit.hooks.haproxy import HAProxyHook
    from cutover_kit.stages.emergency import ensure_not_stopped, record_step_progress

    # Checked before every step: an operator's emergency stop ends the advance here.
    ensure_not_stopped(f"move green to {percent} %")
    record_step_progress(f"{percent} %")
    weights = HAProxyHook().set_green_percent(percent)
    reason = f"Green at {percent} %: weights blue {weights.blue} / green {weights.green}, verified by read-back"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "percent": percent, "weights": weights.to_dict(), "set_at": time.time()}


# Direct smoke requests to green exercise green's own code whatever the flags say (a direct
# request honours X-Cutover-Serve); through the router the flags decide, as for users.
SMOKE_HEADERS = {"app_green": {"X-Cutover-Serve": "typescript"}}


def smoke_checks(step_label: str, targets: tuple[str, ...] = ("app_router", "app_green", "app_blue"),
                 plan_task_id: str | None = None, flag_backend: str | None = None) -> dict[str, Any]:
    """Stage 11: the fixed smoke request list on the router and on each color directly.

    A failure rolls back at once, flags first: in the store of the run's plan (`plan_task_id`),
    else in `flag_backend` (the emergency DAG has no plan; its param), else in the one the apps
    report they evaluate (cutover_kit.flags.propagation.choose_flag_backend)."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.service import ServiceHook
    from cutover_kit.smoke import load_checks, run_checks

    checks = load_checks()
    results = []
    for conn_id in targets:
        hook = ServiceHook(conn_id)
        headers = SMOKE_HEADERS.get(conn_id)
        results += run_checks(checks, conn_id, lambda method, path, body: hook.probe(method, path, body, headers=headers))
    for result in results:
        log.info(result.line)
    failures = [result.line for result in results if not result.ok]
    summary = {
        "verdict": "FAIL" if failures else "PASS",
        "reason": f"Smoke at {step_label}: " + ("; ".join(failures) if failures else f"{len(results)} checks ok on {', '.join(targets)}"),
        "results": [result.to_dict() for result in results],
        "decided_at": time.time(),
    }
    if failures:
        # A failed critical check rolls back at once, like a halted gate: flags, then traffic, then report.
        backend, why = _smoke_rollback_flag_backend(plan_task_id, flag_backend)
        if backend:
            log.info("Smoke rollback: flags -> Rails in %s", why)
        else:
            log.error("Smoke rollback leaves the flags as they are: %s; traffic still goes back to blue", why)
        summary.update(restore_blue_now(flag_backend=backend))
        if not backend:
            summary["flags_restore_error"] = f"flags left as they are: {why}"
        log_reflex(summary)
        get_current_context()["ti"].xcom_push(key="smoke_result", value=summary)
        raise AirflowFailException(summary["reason"])
    log.info(summary["reason"])
    return summary


def _smoke_rollback_flag_backend(plan_task_id: str | None, flag_backend: str | None) -> tuple[str | None, str]:
    """The store a smoke failure flips and why (see choose_flag_backend); None skips the flag lever."""
    from cutover_kit.flags.propagation import choose_flag_backend
    from cutover_kit.stages.flags import app_reports, plan_of_run

    try:
        plan_backend = plan_of_run(plan_task_id).flag_backend if plan_task_id else None
        return choose_flag_backend(plan_backend, flag_backend, app_reports)
    except Exception as error:  # noqa: BLE001 - the traffic lever must still run
        return None, f"the flag store could not be told ({type(error).__name__}: {error})"


def restore_blue_now(haproxy_conn_id: str = "haproxy_default", flag_backend: str | None = "file") -> dict[str, Any]:
    """The reflex rollback shared by the gate trigger and the smoke checks, in the plan's order:
    1. flags -> Rails, verified in the store and every app (green forwards every feature to blue);
    2. traffic -> 100 % blue, read back. The second lever runs whatever happened to the first."""
    from cutover_kit.hooks.haproxy import HAProxyHook

    facts: dict[str, Any] = {}
    if flag_backend:
        from cutover_kit.stages.flags import flags_to_rails_now

        facts.update(flags_to_rails_now(flag_backend))
    try:
        weights = HAProxyHook(haproxy_conn_id).set_green_percent(0)
    except Exception as error:  # the rollback tasks retry; the failure itself must still be reported
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


def capture_blue_baseline(plan: dict[str, Any]) -> dict[str, Any]:
    """Stage 12: blue's own numbers before traffic moves, the yardstick for blue's regression and
    the stand-in for live blue once blue no longer gets traffic."""
    from cutover_kit.hooks.prometheus import PrometheusHook
    from cutover_kit.measure import measure_color
    from cutover_kit.slo import Verdict, summarize_baseline

    parsed = CutoverPlan.from_dict(plan)
    blue = measure_color(PrometheusHook(), "blue", parsed.baseline_seconds, tuple(parsed.slo.quantiles))
    judgement = summarize_baseline(blue, min_requests=parsed.min_requests, window_seconds=parsed.baseline_seconds)
    log.info("%s: %s", judgement.verdict.value, judgement.reason)
    if judgement.verdict is Verdict.FAIL:
        raise AirflowFailException(judgement.reason)
    if judgement.verdict is Verdict.INCONCLUSIVE:
        raise AirflowException(f"{judgement.reason}; retrying")  # more traffic may arrive
    return {"verdict": "PASS", "reason": judgement.reason, "window": blue.to_dict()}


def verify_blue_warm() -> dict[str, Any]:
    """Stage 12 after cutover: blue is kept warm (healthy, ready) so a rollback stays instant."""
    from cutover_kit.hooks.haproxy import HAProxyHook
    from cutover_kit.hooks.service import ServiceHook

    state = HAProxyHook().server_states()["blue"]
    ready = ServiceHook("app_blue").probe("GET", "/readyz")
    if not state.startswith("UP") or ready.status != 200:
        raise AirflowFailException(f"Blue is not warm: router says {state}, /readyz {ready.status or ready.error}")
    reason = f"Blue kept warm: router {state}, /readyz HTTP 200 in {ready.elapsed_ms:.0f} ms"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason}


def record_promotion(plan: dict[str, Any]) -> dict[str, Any]:
    """Stage 13's end: green holds 100 % after the standby watch, read back from the router."""
    from cutover_kit.hooks.haproxy import HAProxyHook
    from cutover_kit.stages.emergency import ensure_not_stopped

    ensure_not_stopped("promote")
    weights = HAProxyHook().read_weights()
    if weights.green_percent != 100:
        raise AirflowFailException(f"Refusing to promote: router weights are {weights.to_dict()}, not 100 % green")
    standby = CutoverPlan.from_dict(plan).standby_seconds
    reason = f"Promoted: 100 % green after a {standby} s standby watch, blue kept warm for rollback"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "weights": weights.to_dict()}
