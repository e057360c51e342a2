"""The cutover's notifications: one webhook (Connection ``cutover_notifications``), one line per
stage transition, gate decision, rollback, emergency stop, verdict and missed deadline. The texts
are built in cutover_kit.cutover_notices (pure); this module reads the facts from the callback's
context and posts them through WebhookNotifier.post (the same Slack-compatible webhook as smoke's).

Why task callbacks, wired once after the DAG is built (:func:`wire_cutover_notifications`):
- a callback runs in the task's own process, right after the task reports its state, under a real
  scheduler and under ``dag.test()`` alike (the rehearsals); a listener plugin would need Airflow's
  plugin loader, which this project keeps away from plugins/ (plugins/.airflowignore), and would see
  every DAG's tasks instead of the cutover's stage boundaries;
- task groups have no callbacks of their own in Airflow 3.2, but a group's first and last tasks
  are its start and end: the wiring finds them from the DAG's edges, so a stage added later (stage
  4, stage 14) is notified without touching this module;
- the gate's decision is its own task's end (on_success: promote; on_failure: halt, with the
  decision line the gate pushed to XCom before failing).

A notice that cannot be built or delivered is logged in one line and the cutover goes on: callbacks
never raise (Airflow would only log it anyway), and each POST is bounded by NOTIFY_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from cutover_kit import connections
from cutover_kit.cutover_notices import (
    EMERGENCY_STOP,
    GATE_DECISION,
    ROLLBACK,
    STAGE_FAILED,
    STAGE_FINISHED,
    STAGE_START_XCOM_KEY,
    STAGE_STARTED,
    VERDICT,
    CutoverNotice,
    announces_stage_start,
    database_rollback_text,
    emergency_latched_text,
    emergency_report_text,
    gate_decision_text,
    notice_payload,
    rollback_text,
    stage_end_summary,
    stage_failed_text,
    stage_finished_text,
    stage_started_text,
    verdict_text,
)
from cutover_kit.notifiers.webhook import WebhookNotifier
from cutover_kit.notify import FAILURE_XCOM_KEY

log = logging.getLogger(__name__)

#: Each POST waits at most this long (connect and read): a notice must never hold a step.
NOTIFY_TIMEOUT_SECONDS = 2.0
#: Stage task groups: stage_NN_<name> (docs/layout.md).
STAGE_GROUP = re.compile(r"^stage_\d\d_[a-z0-9_]+$")
HALT_TASK_PREFIX = "rollback.halt_at_"
#: What a stage 11 smoke check records before it fails the step (stages/traffic_migration.py).
SMOKE_RESULT_XCOM_KEY = "smoke_result"


class CutoverNotifier(WebhookNotifier):
    """Base: subclasses say what happened in :meth:`notice` (None: nothing to say this time)."""

    max_timeout_seconds = NOTIFY_TIMEOUT_SECONDS

    def __init__(self, *, conn_id: str = connections.CUTOVER_NOTIFICATIONS, on_failure: bool = False) -> None:
        super().__init__(conn_id=conn_id, title="Cutover")
        # Which callback this instance is: the context alone cannot tell under dag.test(), whose
        # callbacks get no "exception" even when the task failed.
        self.on_failure = on_failure

    def notice(self, context: Mapping[str, Any]) -> CutoverNotice | None:
        raise NotImplementedError

    def notify(self, context: Any) -> None:
        try:
            notice = self.notice(context)
        except Exception as error:  # noqa: BLE001 - a notice must never fail the task it reports on
            ti = context.get("ti")
            log.error("Cutover notice NOT sent: %s could not build it (%s: %s); the cutover goes on: %s",
                      type(self).__name__, type(error).__name__, error, getattr(ti, "task_id", "?"))
            return
        if notice is not None:
            self.send(notice)

    def send(self, notice: CutoverNotice) -> bool:
        return self.post(notice_payload(notice), notice.line, f"Cutover {notice.kind}", "The cutover goes on")

    # -------------------------------------------------------------------- context helpers

    @staticmethod
    def make(context: Mapping[str, Any], kind: str, text: str, step: str | None) -> CutoverNotice:
        ti = context.get("ti")
        dag = context.get("dag")
        return CutoverNotice(kind=kind, text=text, dag_id=getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None),
                             run_id=getattr(ti, "run_id", None) or context.get("run_id"), step=step,
                             task_id=getattr(ti, "task_id", None), try_number=getattr(ti, "try_number", None))

    @staticmethod
    def error_of(context: Mapping[str, Any]) -> str | None:
        error = context.get("exception")
        if error is None:
            return None
        return str(error).strip() or type(error).__name__

    def outcome_error(self, context: Mapping[str, Any]) -> str | None:
        """None when called for a success; the failure's text (never empty) when for a failure."""
        if not self.on_failure:
            return None
        return self.failure_of(context) or "the task failed (its error is in the task log)"

    @classmethod
    def failure_of(cls, context: Mapping[str, Any]) -> str | None:
        """The failed task's error; when the context has none (``dag.test()`` runs callbacks without
        it), what the task recorded before raising: a stage 11 check's halt (with its reflex time) or
        a smoke failure text."""
        error = cls.error_of(context)
        if error is not None:
            return error
        ti = context.get("ti")
        try:
            smoke = ti.xcom_pull(task_ids=ti.task_id, key=SMOKE_RESULT_XCOM_KEY)
            if isinstance(smoke, Mapping) and smoke.get("verdict") == "FAIL":
                return gate_decision_text("", smoke)
            recorded = ti.xcom_pull(task_ids=ti.task_id, key=FAILURE_XCOM_KEY)
        except Exception as pull_error:  # noqa: BLE001 - the notice goes out without the detail
            log.warning("Recorded failure of %s unreadable (%s: %s)", getattr(ti, "task_id", "?"),
                        type(pull_error).__name__, pull_error)
            return None
        return recorded if isinstance(recorded, str) else None

    @staticmethod
    def states(context: Mapping[str, Any], **selector: Any) -> dict[str, str | None]:
        """This run's task states ({task_id: state}) for task_ids=[...] or task_group_id=..."""
        ti = context["ti"]
        found = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], **selector)
        return dict(found.get(ti.run_id, {}))

    @staticmethod
    def pulled(context: Mapping[str, Any], task_id: str | None, key: str = "return_value") -> Any:
        if not task_id:
            return None
        return context["ti"].xcom_pull(task_ids=task_id, key=key)


class StageNotifier(CutoverNotifier):
    """A stage's start (on_execute_callback of its first tasks), end (on_success_callback of its
    last tasks) or failure (on_failure_callback of any of its tasks but the gates)."""

    EVENTS = ("start", "end", "failure")

    def __init__(self, *, stage: str, event: str, roots: list[str] | tuple[str, ...] = (),
                 leaves: list[str] | tuple[str, ...] = (), conn_id: str = connections.CUTOVER_NOTIFICATIONS) -> None:
        if event not in self.EVENTS:
            raise ValueError(f"StageNotifier event must be one of {self.EVENTS}; got {event!r}")
        super().__init__(conn_id=conn_id, on_failure=event == "failure")
        self.stage, self.event, self.roots, self.leaves = stage, event, tuple(roots), tuple(leaves)

    def notice(self, context: Mapping[str, Any]) -> CutoverNotice | None:
        ti = context["ti"]
        if self.event == "start":
            if resuming_after_deferral(ti):
                log.info("%s resumes after a deferral: the start of %s was announced when it began", ti.task_id, self.stage)
                return None
            if len(self.roots) > 1:
                announced = [root for root in self.roots
                             if root != ti.task_id and ti.xcom_pull(task_ids=root, key=STAGE_START_XCOM_KEY)]
                if not announces_stage_start(ti.task_id, self.roots, announced):
                    log.info("Stage start of %s already announced by %s", self.stage, ", ".join(announced))
                    return None
                self.leave_marker(ti)
            return self.make(context, STAGE_STARTED, stage_started_text(self.stage, ti.task_id), self.stage)
        if self.event == "end":
            summary = stage_end_summary(self.leaves, self.states(context, task_group_id=self.stage))
            if summary is None:
                log.info("Stage %s not finished yet: another last task will announce its end", self.stage)
                return None
            return self.make(context, STAGE_FINISHED, stage_finished_text(self.stage, summary), self.stage)
        task = context.get("task")
        max_tries = (getattr(task, "retries", 0) or 0) + 1 if task is not None else None
        text = stage_failed_text(self.stage, ti.task_id, self.failure_of(context) or "", ti.try_number, max_tries)
        return self.make(context, STAGE_FAILED, text, self.stage)


    def leave_marker(self, ti: Any) -> None:
        """Tell the stage's other first tasks that its start is announced (best effort: without it
        they announce too, which is a repeat, never a silence)."""
        try:
            ti.xcom_push(key=STAGE_START_XCOM_KEY, value=True)
        except Exception as error:  # noqa: BLE001 - see above
            log.warning("Stage start marker of %s not left (%s: %s): another first task may announce it too",
                        self.stage, type(error).__name__, error)


class GateDecisionNotifier(CutoverNotifier):
    """An SLO gate's decision: on_success (promote) and on_failure (halt, or a gate that broke)."""

    def notice(self, context: Mapping[str, Any]) -> CutoverNotice | None:
        from cutover_kit.sensors.slo_gate import GATE_RESULT_KEY  # not at import: the sensor pulls in the trigger

        ti, task = context["ti"], context.get("task")
        step = getattr(task, "step_label", None) or ti.task_id
        event = self.pulled(context, ti.task_id, GATE_RESULT_KEY)
        return self.make(context, GATE_DECISION, gate_decision_text(step, event, self.outcome_error(context)), step)


class RollbackNotifier(CutoverNotifier):
    """The rollback group's end (its verify task, success or failure): what went back, how fast, why."""

    def __init__(self, *, flags_task_id: str, traffic_task_id: str,
                 conn_id: str = connections.CUTOVER_NOTIFICATIONS, on_failure: bool = False) -> None:
        super().__init__(conn_id=conn_id, on_failure=on_failure)
        self.flags_task_id, self.traffic_task_id = flags_task_id, traffic_task_id

    def notice(self, context: Mapping[str, Any]) -> CutoverNotice | None:
        ti = context["ti"]
        states = self.states(context)
        halts = sorted(task for task, state in states.items() if task.startswith(HALT_TASK_PREFIX) and state == "success")
        halt = (self.pulled(context, halts[0]) or {}) if halts else {}
        error = self.outcome_error(context)
        verified = None if error else self.pulled(context, ti.task_id)
        text = rollback_text(halt, self.pulled(context, self.flags_task_id), self.pulled(context, self.traffic_task_id),
                             verified, error)
        return self.make(context, ROLLBACK, text, halt.get("step"))


class DatabaseRollbackNotifier(CutoverNotifier):
    """The down migration after a failed stage 2 (no traffic had moved)."""

    def notice(self, context: Mapping[str, Any]) -> CutoverNotice | None:
        error = self.outcome_error(context)
        result = None if error else self.pulled(context, context["ti"].task_id)
        return self.make(context, ROLLBACK, database_rollback_text(result, error), "database")


class VerdictNotifier(CutoverNotifier):
    """The run's last word (cutover_verdict): promoted, rolled back, or what failed."""

    def notice(self, context: Mapping[str, Any]) -> CutoverNotice | None:
        error = self.outcome_error(context)
        result = None if error else self.pulled(context, context["ti"].task_id)
        return self.make(context, VERDICT, verdict_text(result, error), None)


class EmergencyStopNotifier(CutoverNotifier):
    """The emergency_rollback DAG: the stop latched (or not), then its report of every level."""

    def __init__(self, *, phase: str, conn_id: str = connections.CUTOVER_NOTIFICATIONS, on_failure: bool = False) -> None:
        if phase not in ("latch", "report"):
            raise ValueError(f"EmergencyStopNotifier phase must be 'latch' or 'report'; got {phase!r}")
        super().__init__(conn_id=conn_id, on_failure=on_failure)
        self.phase = phase

    def notice(self, context: Mapping[str, Any]) -> CutoverNotice | None:
        error = self.outcome_error(context)
        result = None if error else self.pulled(context, context["ti"].task_id)
        text = emergency_latched_text(result, error) if self.phase == "latch" else emergency_report_text(result, error)
        return self.make(context, EMERGENCY_STOP, text, "emergency")


def resuming_after_deferral(ti: Any) -> bool:
    """Whether this run of the task resumes it after a deferral (an approval, a gate): Airflow runs
    on_execute_callback again then. The task runner keeps the resume method in the context the API
    server sent, its only record of it (no public attribute in 3.2)."""
    server_context = getattr(ti, "_ti_context_from_server", None)
    return bool(getattr(server_context, "next_method", None))


# ------------------------------------------------------------------------------------ wiring


def _add_callback(task: Any, attribute: str, callback: Any) -> None:
    existing = getattr(task, attribute, None)
    callbacks = list(existing) if isinstance(existing, (list, tuple)) else ([existing] if existing else [])
    setattr(task, attribute, [*callbacks, callback])


def stage_groups(dag: Any) -> dict[str, list[Any]]:
    """{stage group id: its tasks in DAG order} for every top-level stage_NN_* group."""
    groups: dict[str, list[Any]] = {}
    for task in dag.tasks:
        top = task.task_id.split(".", 1)[0]
        if "." in task.task_id and STAGE_GROUP.match(top):
            groups.setdefault(top, []).append(task)
    return groups


def wire_cutover_notifications(dag: Any, conn_id: str = connections.CUTOVER_NOTIFICATIONS) -> None:
    """Attach the cutover's notifiers to a built DAG (module doc). Raises KeyError naming a task the
    cutover DAG must have, so a renamed task fails the DAG's import instead of going quiet."""
    from cutover_kit.sensors.slo_gate import SLOGateOperator

    for stage, tasks in stage_groups(dag).items():
        ids = {task.task_id for task in tasks}
        roots = [task.task_id for task in tasks if not task.upstream_task_ids & ids]
        leaves = [task.task_id for task in tasks if not task.downstream_task_ids & ids]
        for task in tasks:
            if task.task_id in roots:
                _add_callback(task, "on_execute_callback", StageNotifier(stage=stage, event="start", roots=roots, conn_id=conn_id))
            if task.task_id in leaves:
                _add_callback(task, "on_success_callback", StageNotifier(stage=stage, event="end", leaves=leaves, conn_id=conn_id))
            if not isinstance(task, SLOGateOperator):  # a gate's failure is its halt decision, notified below
                _add_callback(task, "on_failure_callback", StageNotifier(stage=stage, event="failure", conn_id=conn_id))
    for task in dag.tasks:
        if isinstance(task, SLOGateOperator):
            _add_callback(task, "on_success_callback", GateDecisionNotifier(conn_id=conn_id))
            _add_callback(task, "on_failure_callback", GateDecisionNotifier(conn_id=conn_id, on_failure=True))
    tasks = dag.task_dict
    for task_id, notifier_class, kwargs in (
        ("rollback.verify_blue_serving", RollbackNotifier,
         {"flags_task_id": "rollback.flags_to_rails", "traffic_task_id": "rollback.route_all_to_blue"}),
        ("database_rollback.down_migration_verified", DatabaseRollbackNotifier, {}),
        ("cutover_verdict", VerdictNotifier, {}),
    ):
        if task_id not in tasks:
            raise KeyError(f"wire_cutover_notifications: the DAG has no task {task_id!r} to notify from")
        _add_callback(tasks[task_id], "on_success_callback", notifier_class(conn_id=conn_id, **kwargs))
        _add_callback(tasks[task_id], "on_failure_callback", notifier_class(conn_id=conn_id, on_failure=True, **kwargs))


def wire_emergency_notifications(dag: Any, conn_id: str = connections.CUTOVER_NOTIFICATIONS) -> None:
    """The emergency_rollback DAG: its latch and its report, each on success and on failure."""
    for task_id, phase in (("latch_emergency_stop", "latch"), ("report", "report")):
        if task_id not in dag.task_dict:
            raise KeyError(f"wire_emergency_notifications: the DAG has no task {task_id!r} to notify from")
        _add_callback(dag.task_dict[task_id], "on_success_callback", EmergencyStopNotifier(phase=phase, conn_id=conn_id))
        _add_callback(dag.task_dict[task_id], "on_failure_callback",
                      EmergencyStopNotifier(phase=phase, conn_id=conn_id, on_failure=True))
