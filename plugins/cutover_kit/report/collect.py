"""What a cutover run left behind (task states and XComs) -> :class:`RunRecord`. Pure.

The stage-15 task reads the facts through Airflow (``stages/post_launch.py``) and hands them
here as :class:`TaskFacts`, one per task of the run, so every rule about where a fact lives is
tested without Airflow:

- the plan: ``stage_01_deployment_readiness.validate_plan``'s return value;
- gate decisions: each gate's XCom ``gate_result`` (the trigger's event: status, line, reason,
  decided_at, elapsed_seconds, polls, the last judged window);
- the weights timeline: each ``set_weights``'s ``{percent, set_at}``, a reflex rollback's
  ``traffic_restored_at`` (gate or smoke), ``rollback.route_all_to_blue``'s ``verified_at``;
- the drill: ``stage_08_rollback_procedures.rollback_drill``; the rollback: the first
  ``halt_at_*`` record plus the rollback group's results; GX: stage 2's validation task;
- the outcome: ``cutover_verdict``'s return value; when the verdict failed (every path but a
  promotion) it returned nothing, so the same pure rule it applies (``outcome.final_outcome``)
  is applied to the same records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cutover_kit.outcome import final_outcome
from cutover_kit.report.record import (
    DataValidation, DrillRecord, GateRecord, RollbackRecord, RunRecord, Series, StageOutcome, WeightChange,
)

PLAN_TASK = "stage_01_deployment_readiness.validate_plan"
VERDICT_TASK = "cutover_verdict"
INTEGRITY_TASK = "verify_data_integrity"
DRILL_SUFFIX = ".rollback_drill"
GX_SUFFIX = ".validate_with_great_expectations"
SET_WEIGHTS_SUFFIX = ".set_weights"
HALT_MARK = ".halt_at_"
ROUTE_BACK_TASK = "rollback.route_all_to_blue"
FLAGS_BACK_TASK = "rollback.flags_to_rails"
VERIFY_BACK_TASKS = ("rollback.verify_blue_serving", "database_rollback.down_migration_verified")
STATE_VERDICTS = {"success": "PASS", "failed": "FAIL", "upstream_failed": "NOT_RUN", "skipped": "SKIPPED",
                  "removed": "SKIPPED"}


@dataclass(frozen=True)
class TaskFacts:
    """One task of the run as Airflow recorded it: state and the XComs the report reads."""

    task_id: str
    state: str | None
    return_value: Any = None
    gate_result: dict[str, Any] | None = None
    smoke_result: dict[str, Any] | None = None
    validation_failure: dict[str, Any] | None = None

    @property
    def value(self) -> dict[str, Any]:
        return self.return_value if isinstance(self.return_value, dict) else {}


def stage_outcome(facts: TaskFacts) -> StageOutcome:
    """The task's verdict (its own when it returned one, else from its state) and reason."""
    value = facts.value
    detail = facts.gate_result or facts.smoke_result or facts.validation_failure or value
    verdict = value.get("verdict") if facts.state == "success" and value.get("verdict") else STATE_VERDICTS.get(facts.state or "", facts.state)
    if facts.gate_result and facts.gate_result.get("status") != "success":
        verdict = "FAIL" if facts.gate_result.get("status") == "failed" else "INCONCLUSIVE"
    reason = detail.get("line") or detail.get("reason") or ""
    if isinstance(facts.return_value, str):  # a branch: where it went
        reason = f"-> {facts.return_value}"
    return StageOutcome(facts.task_id, facts.state, verdict, str(reason))


def _step_task(task_id: str, suffix: str) -> str:
    """The sibling task of a gate in its step group: ...step_25.slo_gate -> ...step_25<suffix>."""
    return task_id.rsplit(".", 1)[0] + suffix


def gate_records(tasks: Iterable[TaskFacts]) -> tuple[GateRecord, ...]:
    by_id = {t.task_id: t for t in tasks}
    gates = []
    for facts in by_id.values():
        event = facts.gate_result
        if not event:
            continue
        weights = by_id.get(_step_task(facts.task_id, SET_WEIGHTS_SUFFIX))
        # The standby watch has no weights of its own (green is already at 100 %): it judges from its start.
        set_at = weights.value.get("set_at") if weights and not facts.task_id.endswith("standby_watch") else None
        gates.append(GateRecord(
            step=str(event.get("step") or facts.task_id), status=str(event.get("status")), verdict=event.get("verdict"),
            line=str(event.get("line") or ""), reason=str(event.get("reason") or ""), decided_at=event.get("decided_at"),
            elapsed_seconds=event.get("elapsed_seconds"), polls=event.get("polls"),
            measurements=event.get("measurements") or {}, weights_set_at=set_at,
        ))
    return tuple(sorted(gates, key=lambda g: (g.decided_at is None, g.decided_at or 0.0, g.step)))


def weight_timeline(tasks: Iterable[TaskFacts]) -> tuple[WeightChange, ...]:
    changes = []
    for facts in tasks:
        value = facts.value
        if facts.task_id.endswith(SET_WEIGHTS_SUFFIX) and value.get("set_at") is not None:
            changes.append(WeightChange(float(value["set_at"]), float(value.get("percent", 0)), facts.task_id))
        for reflex, what in ((facts.gate_result, "gate reflex rollback"), (facts.smoke_result, "smoke reflex rollback")):
            if reflex and reflex.get("traffic_restored_at") is not None:
                changes.append(WeightChange(float(reflex["traffic_restored_at"]), 0.0, f"{facts.task_id} ({what})"))
        if facts.task_id == ROUTE_BACK_TASK and value.get("verified_at") is not None:
            changes.append(WeightChange(float(value["verified_at"]), 0.0, facts.task_id))
    return tuple(sorted(changes, key=lambda c: (c.at, c.source)))


def drill_record(tasks: Iterable[TaskFacts]) -> DrillRecord | None:
    drill = next((t for t in tasks if t.task_id.endswith(DRILL_SUFFIX)), None)
    if drill is None or drill.state not in ("success", "failed"):
        return None
    stage = stage_outcome(drill)
    return DrillRecord(stage.verdict, stage.reason, drill.value.get("rollback_seconds"))


def rollback_record(tasks: Iterable[TaskFacts]) -> RollbackRecord | None:
    tasks = list(tasks)
    halts = sorted((t for t in tasks if HALT_MARK in t.task_id and t.value), key=lambda t: t.value.get("decided_at") or 0.0)
    if not halts:
        return None
    halt = halts[0].value
    by_id = {t.task_id: t for t in tasks}
    flags_at = halt.get("flags_restored_at")
    if flags_at is None and FLAGS_BACK_TASK in by_id:
        flags_at = by_id[FLAGS_BACK_TASK].value.get("verified_at")
    route = by_id.get(ROUTE_BACK_TASK)
    verify = next((by_id[t] for t in VERIFY_BACK_TASKS if t in by_id and by_id[t].state in ("success", "failed")), None)
    stop = halt.get("emergency_stop")
    return RollbackRecord(
        step=str(halt.get("step") or halts[0].task_id), reason=str(halt.get("reason") or ""),
        decided_at=halt.get("decided_at"), flags_restored_at=flags_at,
        traffic_restored_at=halt.get("traffic_restored_at"),
        route_verified_at=route.value.get("verified_at") if route else None,
        verified=None if verify is None else bool(verify.value.get("verified")) and verify.state == "success",
        emergency_stop=describe_stop(stop),
    )


def describe_stop(stop: Any) -> str | None:
    """The halt record's emergency stop (control.EmergencyStop.to_json) as "by <who>: <reason>"."""
    if not stop:
        return None
    if isinstance(stop, str):
        try:
            stop = json.loads(stop)
        except ValueError:
            return stop
    if isinstance(stop, dict):
        return f"by {stop.get('requested_by', 'unknown')}: {stop.get('reason', '')}".strip()
    return str(stop)


def data_validation(tasks: Iterable[TaskFacts]) -> DataValidation | None:
    gx = next((t for t in tasks if t.task_id.endswith(GX_SUFFIX)), None)
    if gx is None or gx.state not in ("success", "failed"):
        return None
    value = gx.value
    if "expectations" in value:
        return DataValidation(value.get("expectations"), value.get("failed"), value.get("seconds"),
                              tuple(value.get("failed_names") or ()), tuple(value.get("lines") or ()))
    reason = (gx.validation_failure or {}).get("reason") or f"validation task {gx.state} without a summary"
    return DataValidation(None, None, error=reason)


def run_outcome(tasks: Iterable[TaskFacts]) -> tuple[str | None, str]:
    """(outcome, reason): the verdict's own words, else the verdict's rule on the same records."""
    tasks = list(tasks)
    by_id = {t.task_id: t for t in tasks}
    verdict = by_id.get(VERDICT_TASK)
    if verdict and verdict.value.get("outcome"):
        return verdict.value["outcome"], str(verdict.value.get("reason") or "")
    if verdict is None or verdict.state not in ("success", "failed"):
        return None, "the run has no verdict yet (cutover_verdict did not finish)"
    halts = sorted((t.value for t in tasks if HALT_MARK in t.task_id and t.value), key=lambda h: h.get("decided_at") or 0.0)
    verify = next((by_id[t].value for t in VERIFY_BACK_TASKS if t in by_id and by_id[t].value), None)
    promote = next((t.value for t in tasks if t.task_id.endswith(".promote") and t.value), None)
    failed = sorted(t.task_id for t in tasks if t.state == "failed" and t.task_id not in (VERDICT_TASK, INTEGRITY_TASK))
    integrity = by_id.get(INTEGRITY_TASK)
    outcome = final_outcome(promote, halts[0] if halts else None, verify, failed,
                            integrity_failed=bool(integrity and integrity.state == "failed"))
    return outcome.outcome, outcome.reason


def build_run_record(
    *,
    dag_id: str,
    run_id: str,
    started_at: float | None,
    ended_at: float | None,
    tasks: Iterable[TaskFacts],
    series: Iterable[Series] = (),
    series_note: str | None = None,
    load_test: dict[str, Any] | None = None,
    security: dict[str, Any] | None = None,
) -> RunRecord:
    tasks = sorted(tasks, key=lambda t: t.task_id)
    plan_task = next((t for t in tasks if t.task_id == PLAN_TASK), None)
    outcome, reason = run_outcome(tasks)
    return RunRecord(
        dag_id=dag_id, run_id=run_id, started_at=started_at, ended_at=ended_at, outcome=outcome, outcome_reason=reason,
        plan=plan_task.value or None if plan_task else None,
        stages=tuple(stage_outcome(t) for t in tasks), gates=gate_records(tasks), weights=weight_timeline(tasks),
        drill=drill_record(tasks), rollback=rollback_record(tasks), data_validation=data_validation(tasks),
        series=tuple(series), series_note=series_note, load_test=load_test, security=security,
    )


def stage_block(tasks: Iterable[TaskFacts], group_prefix: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The result block a stage recorded (stage 6's load_test summary, stage 7's security verdict):
    the return value of the first task of a group starting with ``group_prefix`` that carries every
    key. None when the run has no such stage: the report then says it was never judged."""
    for facts in sorted(tasks, key=lambda t: t.task_id):
        if facts.task_id.startswith(group_prefix) and all(key in facts.value for key in keys):
            return facts.value
    return None
