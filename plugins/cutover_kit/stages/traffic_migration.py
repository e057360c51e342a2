"""Stage 10, gradual traffic migration (task group ``stage_10_traffic_migration``): per step
(``step_<percent>``), a go/no-go approval before the big ones (``approve``, an operator,
cutover_kit.operators.approval; the previous step stays judged while it waits) and the branch
after it (``decide_approval``), flags for the step (``set_flags``), weights (``set_weights``), the stage 11
smoke checks (``stage_11_smoke_checks``), the SLO gate (an operator, cutover_kit.sensors) and the
branch after it (``decide``): next step or rollback. Stage 13's step at 100 % runs the same tasks
through :mod:`cutover_kit.stages.full_cutover`, which wraps these.

Each task sets absolute state (a weight, never "+20 %"; a whole FlagState, never "one more flag
on") so a cleared and re-run task converges to the same place.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cutover_kit import connections
from cutover_kit.actions.rollback import log_reflex, restore_blue_now
from cutover_kit.flags.model import FlagState
from cutover_kit.hooks.levers import app_reports, connected_levers
from cutover_kit.outcome import choose_after_gate
from cutover_kit.plan import CutoverPlan
from cutover_kit.runbooks import with_runbook
from cutover_kit.stages._shared import applied_flags, ensure_not_stopped, plan_of_run, record_step_progress, router_of_run

log = logging.getLogger(__name__)

def set_step_flags(percent: int, plan_task_id: str) -> dict[str, Any]:
    """Before a traffic step raises the weight: features on in green, rollout at the step's share.

    The step's first task, so it obeys the emergency stop before anything is written: a step
    starting just after a latch must not turn green's features back on (possibly after the
    emergency run verified flags -> Rails)."""
    ensure_not_stopped(f"turn green's features on for {percent} %")
    plan = plan_of_run(plan_task_id)
    return {**applied_flags(FlagState.for_step(percent), plan.flag_backend, f"Flags for {percent} %"), "percent": percent}


def set_traffic(percent: int, plan_task_id: str) -> dict[str, Any]:
    # Checked before every step: an operator's emergency stop ends the advance here.
    ensure_not_stopped(f"move green to {percent} %")
    record_step_progress(f"{percent} %")
    router = router_of_run(plan_task_id)
    # Green may take the step's writes from the moment the router is told, before the read-back
    # returns: the step's data window (stage 11's and the gate's integrity probe) starts here.
    changing_at = time.time()
    weights = router.set_green_percent(percent)
    reason = f"Green at {percent} %: weights blue {weights.blue} / green {weights.green}, verified by read-back"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "percent": percent, "weights": weights.to_dict(),
            "changing_at": changing_at, "set_at": time.time()}


def smoke_checks(step_label: str, targets: tuple[str, ...] = (connections.APP_ROUTER, connections.APP_GREEN, connections.APP_BLUE),
                 plan_task_id: str | None = None, flag_backend: str | None = None,
                 weights: dict[str, Any] | None = None, acknowledged_writes_file: str | None = None,
                 postgres_conn_id: str = connections.POSTGRES) -> dict[str, Any]:
    """Stage 11: the fixed smoke request list on the router and on each color directly, then (for a
    traffic step: ``weights``, its set_weights result) one integrity probe of the rows written
    since the weights changed, with the acknowledged-writes ledger when the run has one.

    Why the probe here too, not only in the gate: this is the first task after the weights change,
    and green takes the step's writes from that instant. The gate starts one task later (~2 s per
    task here, far more on a loaded machine), so a bad write seen here is caught a whole task
    sooner; the gate then probes the same window on every poll. Checks first, probe second: the
    probe then also sees the order the write check just made through green.

    A failure rolls back at once, flags first: in the store of the run's plan (`plan_task_id`),
    else in `flag_backend` (the emergency DAG has no plan; its param), else in the one the apps
    report they evaluate (cutover_kit.flags.propagation.choose_flag_backend)."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.service import ServiceHook
    from cutover_kit.smoke import direct_request_headers, judge_step_smoke, load_checks, run_checks

    checks = load_checks()
    results = []
    for conn_id in targets:
        hook = ServiceHook(conn_id)
        headers = direct_request_headers(conn_id)
        results += run_checks(checks, conn_id, lambda method, path, body: hook.probe(method, path, body, headers=headers))
    for result in results:
        log.info(result.line)
    # Stage 7's passive security checks, when the step's smoke targets both colors.
    security_failures = []
    if plan_task_id and {connections.APP_BLUE, connections.APP_GREEN} <= set(targets):
        security_failure = security_smoke(plan_task_id, step_label)
        if security_failure:
            security_failures.append(security_failure)
    data, data_error = (None, None) if weights is None else _first_look_at_data(weights, acknowledged_writes_file, postgres_conn_id)
    verdict, reason = judge_step_smoke(step_label, results, targets, data, data_error, security_failures)
    summary = {
        "verdict": verdict,
        "reason": reason,
        "results": [result.to_dict() for result in results],
        "decided_at": time.time(),
    }
    if data is not None:
        summary["integrity"] = data.to_dict()
    if verdict == "FAIL":
        # A failed critical check rolls back at once, like a halted gate: flags, then traffic, then report.
        backend, why = _smoke_rollback_flag_backend(plan_task_id, flag_backend)
        if backend:
            log.info("Smoke rollback: flags -> Rails in %s", why)
        else:
            log.error("Smoke rollback leaves the flags as they are: %s; traffic still goes back to blue", why)
        summary.update(restore_blue_now(connected_levers(plan=_plan_or_none(plan_task_id)), backend))
        if not backend:
            summary["flags_restore_error"] = f"flags left as they are: {why}"
        log_reflex(summary)
        get_current_context()["ti"].xcom_push(key="smoke_result", value=summary)
        raise AirflowFailException(with_runbook(summary["reason"]))
    log.info(summary["reason"])
    return summary


def _first_look_at_data(weights: dict[str, Any], acknowledged_writes_file: str | None,
                        postgres_conn_id: str) -> tuple[Any, str | None]:
    """One integrity probe over the step's rows: (IntegrityJudgement, None), or (None, why it could not read)."""
    from cutover_kit.db.integrity_probe import IntegrityProbe
    from cutover_kit.hooks.postgres import connection_dsn
    from cutover_kit.integrity import data_window_start, judge_integrity

    probe = IntegrityProbe(lambda: connection_dsn(postgres_conn_id), data_window_start(weights), acknowledged_writes_file)
    try:
        judgement = judge_integrity(probe.read())
    except Exception as error:  # noqa: BLE001 - an unreadable database is the gate's INCONCLUSIVE, not a smoke failure
        log.warning("Smoke: the step's rows were not checked (the gate's polls will): %s", error)
        return None, f"integrity probe could not read the database: {error}"
    finally:
        probe.close()
    log.info("Smoke: %s", judgement.reason)
    return judgement, None


def security_smoke(plan_task_id: str, step_label: str) -> str | None:
    """Stage 7's passive checks inside stage 11: a few GET paths and the protected routes on green
    (its own code) and blue, judged like stage 7 (a blocking finding on green, or green worse than
    blue). A weakness that appears after promotion to a step fails the smoke check with a line
    naming the finding. None when clean."""
    from cutover_kit.hooks.service import ServiceHook
    from cutover_kit.security.audit import DEFAULT_SMOKE_PATHS, Answer, smoke_findings, smoke_security_failure
    from cutover_kit.stages.security_audit import SAMPLE_ID, own_headers

    security = plan_of_run(plan_task_id).security
    if not security:
        log.info("Smoke at %s: the plan has no security section; passive security checks not run", step_label)
        return None
    findings = []
    for color, conn_id in (("blue", connections.APP_BLUE), ("green", connections.APP_GREEN)):
        hook = ServiceHook(conn_id)
        headers = own_headers(color)

        def send(method: str, path: str, extra: dict[str, str], hook: ServiceHook = hook, headers: dict[str, str] = headers) -> Answer:
            return Answer(*hook.exchange(method, path, {**headers, **extra}))

        try:
            findings += smoke_findings(color, send, security.get("smoke_paths") or DEFAULT_SMOKE_PATHS,
                                       security.get("protected_routes") or (), SAMPLE_ID)
        except Exception as error:  # noqa: BLE001 - an unanswered check is a failed check, never a pass
            return f"FAIL security checks on {color}: {type(error).__name__}: {error}"
    failure = smoke_security_failure(findings, security["blocking_severity"])
    counts = {color: sum(1 for f in findings if f.color == color) for color in ("blue", "green")}
    log.info("Smoke at %s: passive security checks, findings blue %d, green %d: %s", step_label, counts["blue"],
             counts["green"], failure or "green no worse than blue, nothing blocking")
    return failure


def _plan_or_none(plan_task_id: str | None) -> CutoverPlan | None:
    """The run's plan for the smoke reflex's router; None (the haproxy default) when there is no
    plan to read, said in the log: the rollback tasks then re-assert 100 % blue on the plan's router."""
    if not plan_task_id:
        return None
    try:
        return plan_of_run(plan_task_id)
    except Exception as error:  # noqa: BLE001 - the traffic lever must still run
        log.error("Smoke rollback: the plan is unreadable (%s: %s); pulling the default router", type(error).__name__, error)
        return None


def _smoke_rollback_flag_backend(plan_task_id: str | None, flag_backend: str | None) -> tuple[str | None, str]:
    """The store a smoke failure flips and why (see choose_flag_backend); None skips the flag lever."""
    from cutover_kit.flags.propagation import choose_flag_backend

    try:
        plan_backend = plan_of_run(plan_task_id).flag_backend if plan_task_id else None
        return choose_flag_backend(plan_backend, flag_backend, app_reports)
    except Exception as error:  # noqa: BLE001 - the traffic lever must still run
        return None, f"the flag store could not be told ({type(error).__name__}: {error})"


def decide_after_gate(gate_task_id: str, proceed_task_id: str, halt_task_id: str) -> str:
    """The branch after a step's gate: the next step, or the step's halt in the rollback group."""
    from airflow.sdk import get_current_context

    from cutover_kit.sensors.slo_gate import GATE_RESULT_KEY  # not at import: the sensor pulls in the trigger

    gate_result = get_current_context()["ti"].xcom_pull(task_ids=gate_task_id, key=GATE_RESULT_KEY)
    chosen, line = choose_after_gate(gate_result, proceed_task_id, halt_task_id)
    log.info(line)
    return chosen


def decide_after_approval(approval_task_id: str, proceed_task_id: str, halt_task_id: str) -> str:
    """The branch after a step's go/no-go approval (``approve``): the step's flags, or its halt in
    the rollback group. Only a recorded approval (a person's, the rehearsal's automatic one, or none
    asked) goes on; a rejection, the timeout's safe default, a halt while waiting or no record roll back."""
    from airflow.sdk import get_current_context

    from cutover_kit.approvals import APPROVAL_XCOM_KEY, choose_after_approval

    record = get_current_context()["ti"].xcom_pull(task_ids=approval_task_id, key=APPROVAL_XCOM_KEY)
    chosen, line = choose_after_approval(record, proceed_task_id, halt_task_id)
    log.info(line)
    return chosen
