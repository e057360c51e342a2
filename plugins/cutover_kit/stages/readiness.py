"""Stage 1, deployment readiness: the plan and the run's input files are valid, every Connection
resolves, every endpoint answers.

Nothing here changes the world: a bad plan or a missing Connection stops the run before any side effect.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cutover_kit.plan import PlanError, plan_for_params

log = logging.getLogger(__name__)

REQUIRED_CONNECTIONS = (
    "prometheus_default",
    "haproxy_default",
    "postgres_default",
    "redis_default",
    "app_blue",
    "app_green",
    "app_router",
)


def validate_plan(dag_steps: list[int]) -> dict[str, Any]:
    """Every input file the run will need, checked before anything moves: the plan (with the
    params' overrides), the stage-11 smoke checks, and the acknowledged-writes ledger if one is
    given. Returns the plan's dict form (XCom) that later tasks pull by this task's id."""
    from airflow.sdk import get_current_context

    params = dict(get_current_context()["params"])
    try:
        plan = plan_for_params(params)
    except PlanError as error:
        raise AirflowFailException(f"Plan refused: {error}") from error
    if list(plan.steps) != list(dag_steps):
        raise AirflowFailException(
            f"Plan refused: plan {plan.name!r} steps {list(plan.steps)} differ from this DAG's steps {list(dag_steps)} "
            "(the DAG's shape comes from include/plans/default.yaml)"
        )
    validate_run_inputs(params.get("acknowledged_writes_file"))
    steps = " -> ".join(f"{step} %" for step in plan.steps)
    log.info(
        "Plan %r valid: steps %s, bake %s s, hold up to %s s, window %s s, >= %s requests, "
        "halt after %s breaches, standby %s s",
        plan.name, steps, plan.bake_seconds, plan.step_timeout_seconds, plan.window_seconds,
        plan.min_requests, plan.consecutive_breaches, plan.standby_seconds,
    )
    return plan.to_dict()


def validate_run_inputs(acknowledged_writes_file: str | None, checks_file: str | Path | None = None) -> None:
    """The smoke checks (first used at the first traffic step, stage 11) and the ledger (read at
    the very end) must be usable now: finding out after traffic moved would cost a rollback or
    an unverifiable run. Raises AirflowFailException naming the file and the problem."""
    from cutover_kit.acknowledged_writes import AcknowledgedWritesError, load_acknowledged_writes
    from cutover_kit.smoke import DEFAULT_CHECKS_FILE, SmokeCheckError, load_checks

    checks_path = Path(checks_file) if checks_file else DEFAULT_CHECKS_FILE
    try:
        checks = load_checks(checks_path)
    except SmokeCheckError as error:
        raise AirflowFailException(f"Smoke checks refused (stage 11 would run them): {error}") from error
    log.info("Smoke checks valid: %d checks in %s (%s)", len(checks), checks_path, ", ".join(c.name for c in checks))
    if not acknowledged_writes_file:
        log.info("No acknowledged-writes file given: the final integrity check will only compare columns")
        return
    try:
        ids = load_acknowledged_writes(acknowledged_writes_file)
    except AcknowledgedWritesError as error:
        raise AirflowFailException(f"Acknowledged writes refused: {error}") from error
    log.info("Acknowledged-writes file %s readable: %d order ids so far (read again at the end)",
             acknowledged_writes_file, len(ids))


def resolve_connections(conn_ids: tuple[str, ...] = REQUIRED_CONNECTIONS) -> dict[str, Any]:
    from airflow.sdk import BaseHook

    resolved, missing = {}, []
    for conn_id in conn_ids:
        try:
            conn = BaseHook.get_connection(conn_id)
        except Exception as error:  # AirflowNotFoundException and backend errors alike
            missing.append(f"{conn_id} ({type(error).__name__})")
            continue
        resolved[conn_id] = f"{conn.conn_type}://{conn.host or ''}{':' + str(conn.port) if conn.port else ''}"
    if missing:
        raise AirflowFailException(f"Connections missing or unreadable: {', '.join(missing)}")
    reason = f"All {len(resolved)} connections resolve: {', '.join(resolved)}"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "connections": resolved}


def check_endpoints_reachable() -> dict[str, Any]:
    from cutover_kit.hooks.haproxy import HAProxyHook
    from cutover_kit.hooks.prometheus import PrometheusHook
    from cutover_kit.hooks.service import ServiceHook
    from cutover_kit.promql import AppMetrics

    findings: dict[str, str] = {}
    problems: list[str] = []

    prometheus = PrometheusHook()
    if not prometheus.is_online():
        problems.append(f"Prometheus at {prometheus.base_url} is not ready")
    else:
        for color in ("blue", "green"):
            up = prometheus.query_optional(AppMetrics().up(color))
            if up is None:
                problems.append(f"Prometheus has no scrape target for {color}")
        findings["prometheus"] = prometheus.base_url

    try:
        states = HAProxyHook().server_states()
        findings["haproxy"] = ", ".join(f"{color} {state}" for color, state in sorted(states.items()))
    except Exception as error:
        problems.append(f"HAProxy runtime API: {error}")

    for conn_id in ("app_router", "app_blue", "app_green"):
        probe = ServiceHook(conn_id).probe("GET", "/healthz")
        if probe.status is None:
            problems.append(f"{conn_id} at {probe.url} unreachable: {probe.error}")
        else:
            findings[conn_id] = f"HTTP {probe.status} in {probe.elapsed_ms:.0f} ms"

    if problems:
        raise AirflowFailException("Endpoints not ready: " + "; ".join(problems))
    reason = "Every endpoint answers: " + "; ".join(f"{k}: {v}" for k, v in findings.items())
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "endpoints": findings}
