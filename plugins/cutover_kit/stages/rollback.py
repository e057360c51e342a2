"""The rollback path (task group ``rollback``): record why (``halt_at_<step>``), flags -> Rails
(verified in the store and every app), then 100 % of traffic on blue (verified), then prove blue
serves. Two levels, in the plan's order; the traffic level runs even if the flag level failed.
A verified rollback is recorded as "rolled_back" for the next cutover's stage 1.

``route_all_to_blue`` re-asserts the absolute state even when the gate's reflex already did it:
setting weights is idempotent, and the read-back is the proof we record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit import connections
from cutover_kit.actions.rollback import traffic_to_blue_within
from cutover_kit.control import emergency_halt_line
from cutover_kit.flags.model import FlagState
from cutover_kit.outcome import choose_after_load_test, choose_after_security_audit, halt_reason
from cutover_kit.previous_cutover import ROLLED_BACK
from cutover_kit.runbooks import level_runbook, with_runbook
from cutover_kit.stages._halt_logs import log_offending_lines
from cutover_kit.stages._shared import applied_flags, latched_stop_or_none, plan_of_run, record_outcome

log = logging.getLogger(__name__)

HALT_TASK_PREFIX = "rollback.halt_at_"  # the group's record_halt tasks, one per step and the standby watch


def record_halt(step_label: str, gate_task_id: str, smoke_task_id: str | None, set_weights_task_id: str) -> dict[str, Any]:
    from airflow.sdk import get_current_context

    from cutover_kit.sensors.slo_gate import GATE_RESULT_KEY  # not at import: the sensor pulls in the trigger

    context = get_current_context()
    ti = context["ti"]
    gate_result = ti.xcom_pull(task_ids=gate_task_id, key=GATE_RESULT_KEY)
    smoke_result = ti.xcom_pull(task_ids=smoke_task_id, key="smoke_result") if smoke_task_id else None
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    failed = sorted(task for task, state in states.items() if state == "failed")
    reason = halt_reason(step_label, gate_result, smoke_result, failed)
    stop = latched_stop_or_none()
    if stop is not None:  # the operator's reason outranks whatever the step saw
        reason = emergency_halt_line(step_label, stop)
        decided_at_stop = stop.requested_at
    else:
        decided_at_stop = None
    reason = with_runbook(reason)  # a gate's line names its section already; a smoke or task halt gets one
    decided_at = (decided_at_stop or (gate_result or {}).get("decided_at") or (smoke_result or {}).get("decided_at")
                  or time.time())
    log.info(reason)
    log_offending_lines(decided_at, gate_result)

    def reflex(key: str) -> Any:
        return (gate_result or {}).get(key) or (smoke_result or {}).get(key)

    return {
        "verdict": "FAIL",
        "step": step_label,
        "reason": reason,
        "decided_at": decided_at,
        "emergency_stop": stop.to_json() if stop is not None else None,
        "flags_restored_at": reflex("flags_restored_at"),
        "traffic_restored_at": reflex("traffic_restored_at"),
    }


def record_load_test_halt(load_task_id: str, stage_task_ids: list[str]) -> dict[str, Any]:
    """Why stage 6 stopped the run before any traffic moved: its verdict, or its task that failed."""
    from airflow.sdk import get_current_context

    from cutover_kit.stages.load_testing import FAILURE_KEY, SUMMARY_KEY

    ti = get_current_context()["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    _, line = choose_after_load_test(
        ti.xcom_pull(task_ids=load_task_id, key=SUMMARY_KEY), ti.xcom_pull(task_ids=load_task_id, key=FAILURE_KEY),
        {task: states.get(task) for task in stage_task_ids}, "proceed", "halt")
    reason = f"Halt at stage 6 (load testing), green never got traffic: {line.removeprefix('Halt before traffic: ')}"
    log.info(reason)
    return {"verdict": "FAIL", "step": "load testing", "reason": reason, "decided_at": time.time(),
            "traffic_restored_at": None}


def record_security_halt(judge_task_id: str) -> dict[str, Any]:
    """Why stage 7 stopped the run before any traffic moved: the judge's reason (the finding that
    blocked, the check where green is worse, or the scanner that gave no result)."""
    from airflow.sdk import get_current_context

    from cutover_kit.stages.security_audit import FAILURE_KEY, SUMMARY_KEY

    ti = get_current_context()["ti"]
    state = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {}).get(judge_task_id)
    _, line = choose_after_security_audit(
        ti.xcom_pull(task_ids=judge_task_id, key=SUMMARY_KEY), ti.xcom_pull(task_ids=judge_task_id, key=FAILURE_KEY),
        state, "proceed", "halt")
    reason = f"Halt at stage 7 (security audit), green never got traffic: {line.removeprefix('Halt before traffic: ')}"
    log.info(reason)
    return {"verdict": "FAIL", "step": "security audit", "reason": reason, "decided_at": time.time(),
            "traffic_restored_at": None}


def record_approval_halt(step_label: str, approval_task_id: str) -> dict[str, Any]:
    """Why the run halts at a go/no-go approval (rejected, unanswered by the deadline, or the step
    on green halted while it waited), from the approval's XCom record; the facts of the reflex
    rollback the watch ran, when it ran one. Same shape as record_halt's result."""
    from airflow.sdk import get_current_context

    from cutover_kit.approvals import APPROVAL_XCOM_KEY, approval_halt_reason

    record = get_current_context()["ti"].xcom_pull(task_ids=approval_task_id, key=APPROVAL_XCOM_KEY)
    reason = approval_halt_reason(step_label, record)
    stop = latched_stop_or_none()
    if stop is not None:  # the operator's reason outranks whatever the wait saw
        reason = emergency_halt_line(step_label, stop)
    watch = (record or {}).get("watch") or {}
    log.info(reason)
    return {
        "verdict": "FAIL",
        "step": f"approval of {step_label}",
        "reason": reason,
        "decided_at": (stop.requested_at if stop is not None else None) or (record or {}).get("decided_at") or time.time(),
        "emergency_stop": stop.to_json() if stop is not None else None,
        "approval": record,
        "flags_restored_at": watch.get("flags_restored_at"),
        "traffic_restored_at": watch.get("traffic_restored_at"),
    }


def flags_to_rails(plan_task_id: str) -> dict[str, Any]:
    """Level 1: re-assert flags -> Rails in the plan's store and verify it everywhere, timed."""
    plan = plan_of_run(plan_task_id)
    return applied_flags(FlagState.rails(), plan.flag_backend, "Rollback level 1, flags -> Rails", runbook=level_runbook("flags"))


def route_all_to_blue(plan_task_id: str | None = None, plan_name: str | None = None) -> dict[str, Any]:
    """Level 2: 100 % of traffic on blue, read back, through the router of the run's plan
    (`plan_task_id`), or of the plan file `plan_name` (the emergency DAG runs without a plan). A
    router that refuses or cannot be reached is retried within the traffic deadline (60 s) before
    the task fails with the reason (and retries)."""
    from cutover_kit.hooks.levers import router_for_plan
    from cutover_kit.plan import PlanError, load_plan

    if plan_task_id:
        router = router_for_plan(plan_of_run(plan_task_id))
    else:
        try:
            router = router_for_plan(load_plan(plan_name or "default"))
        except PlanError as error:
            raise AirflowFailException(f"Rollback level 2: cannot tell which router to drive: {error}") from error
    log.info("Router: %s", router.describe())
    started = time.monotonic()
    facts = traffic_to_blue_within(router)
    if "traffic_restore_error" in facts:
        raise AirflowException(f"Rollback level 2, traffic -> blue NOT verified: {facts['traffic_restore_error']}")
    weights = facts["weights_after_rollback"]
    retried = f" on attempt {facts['traffic_attempts']}" if facts["traffic_attempts"] > 1 else ""
    reason = (f"Rollback level 2, traffic -> blue: weights {weights}, verified by read-back{retried} "
              f"in {time.monotonic() - started:.3f} s")
    log.info(with_runbook(reason, level_runbook("traffic")))
    return {"verdict": "PASS", "reason": reason, "weights": weights, "verified_at": facts["traffic_restored_at"]}


def check_blue_serving_alone(probes: int = 10) -> dict[str, Any]:
    """Through the router, every answer must come from blue and succeed (also the emergency DAG's check)."""
    from cutover_kit.hooks.service import ServiceHook

    router = ServiceHook(connections.APP_ROUTER)
    served_by, failures = [], []
    for _ in range(probes):
        probe = router.probe("GET", "/api/users/1")
        served_by.append(probe.headers.get("x-backend-server") or probe.headers.get("x-served-by"))
        if probe.status != 200:
            failures.append(str(probe.status or probe.error))
    not_blue = [color for color in served_by if color != "blue"]
    if failures or not_blue:
        raise AirflowFailException(with_runbook(
            f"Blue not serving alone after rollback: {len(failures)} failed probes {failures[:3]}, "
            f"{len(not_blue)} answered by {set(not_blue)}", level_runbook("not_verified")))
    reason = f"Rollback verified: {probes}/{probes} probes through the router served by blue with HTTP 200"
    log.info(with_runbook(reason, level_runbook("verify")))
    return {"verdict": "PASS", "reason": reason, "verified": True}


def verify_blue_serving(probes: int = 10) -> dict[str, Any]:
    """Blue serves alone; then this run is recorded as "rolled_back" with its halt's reason, so the
    next cutover's stage 1 knows no cutover is in place (best effort: see record_outcome)."""
    from airflow.sdk import get_current_context

    result = check_blue_serving_alone(probes)
    ti = get_current_context()["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    halts = sorted(task for task, state in states.items() if task.startswith(HALT_TASK_PREFIX) and state == "success")
    halt = (ti.xcom_pull(task_ids=halts[0]) or {}) if halts else {}
    why = halt.get("reason") or "rollback group ran without a recorded halt"
    recorded = record_outcome(ROLLED_BACK, f"{why}; {result['reason']}")
    return {**result, "outcome_recorded": recorded}
