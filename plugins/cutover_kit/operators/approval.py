"""StepApprovalOperator: a go/no-go approval before a big traffic step, with the step on green
still judged while it waits.

A subclass of the providers-standard ApprovalOperator (options Approve / Reject), so the request is
the provider's human-in-the-loop record: the Airflow UI's "required actions" page and
``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails`` answer it, only the
plan's ``assigned_users`` may (403 for anyone else), and a second answer gets 409. What differs:

- The approvers, the timeout and whether to ask at all come from the run's plan (its
  ``approvals`` section, pulled from stage 1's XCom at execute time), not from the DAG file.
- With ``auto_approve`` (rehearsals) or a step the plan does not guard, it records the answer
  and returns without deferring, so ``dag.test()`` rehearsals pass through.
- Otherwise it writes the request exactly as the provider does, sends the notifiers (the webhook
  request with a link to the task), then defers to
  :class:`~cutover_kit.triggers.approval.ApprovalWatchTrigger` instead of the provider's
  HITLTrigger: one trigger that waits for the answer *and* keeps the SLO gate of the step already
  on green judging (reflex rollback on a breach at once, fluxcd/flagger#1801).
- Unanswered by the deadline: reject (hold, then roll back; never promote).
- It never skips downstream tasks on Reject (the provider's way); it records the outcome in XCom
  (key ``approval``: who answered what and when) and the branch after it (``decide_approval``)
  goes on or rolls back. A halt of the watching gate fails the task (red, like a halted gate);
  a rejection or a timeout is an answer, so the task succeeds and the branch rolls back.

The plan, the blue baseline and the previous step's weights are pulled by task id, not passed as
XComArgs, for the reason given in cutover_kit.sensors.slo_gate (no edges that bypass the step chain).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

from cutover_kit import connections
from cutover_kit.approvals import (
    APPROVAL_XCOM_KEY, APPROVE, REJECT, ApprovalOutcome, approval_label, approval_record, immediate_record,
)
from cutover_kit.sensors.slo_gate import DEFERRAL_MARGIN

# What the event of the watch carries into the record (the gate's facts, the reflex rollback's).
WATCH_FIELDS = ("step", "status", "verdict", "reason", "polls", "elapsed_seconds", "flags_restored_at",
                "traffic_restored_at", "weights_after_rollback", "reflex_error", "emergency_stop", "request_closed")


class StepApprovalOperator(ApprovalOperator):
    def __init__(self, *, percent: int, watching_percent: int, watching_weights_task_id: str, plan_task_id: str,
                 baseline_task_id: str | None = None, prometheus_conn_id: str = connections.PROMETHEUS,
                 haproxy_conn_id: str | None = connections.HAPROXY, state_conn_id: str | None = connections.REDIS,
                 **kwargs: Any) -> None:
        asking, watching = approval_label(percent), approval_label(watching_percent)
        kwargs.setdefault("subject", f"Go to {asking} of traffic on green?")
        # Timeout default: the safe answer. Written to the HITL record, so the UI shows it.
        super().__init__(defaults=[REJECT], **kwargs)
        self.percent = percent
        self.watching_percent = watching_percent
        self.watching_weights_task_id = watching_weights_task_id
        self.plan_task_id = plan_task_id
        self.baseline_task_id = baseline_task_id
        self.prometheus_conn_id = prometheus_conn_id
        self.haproxy_conn_id = haproxy_conn_id
        self.state_conn_id = state_conn_id
        self.asking, self.watching = asking, watching

    def _plan(self, context: Any):
        from cutover_kit.plan import CutoverPlan

        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        if not plan:
            raise AirflowFailException(f"Approval of {self.asking}: no plan from {self.plan_task_id}")
        return CutoverPlan.from_dict(plan)

    def _finish(self, context: Any, record: dict[str, Any]) -> dict[str, Any]:
        context["ti"].xcom_push(key=APPROVAL_XCOM_KEY, value=record)
        self.log.info(record["line"])
        return record

    def _body(self, plan: Any, deadline: float) -> str:
        policy = plan.approvals
        until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(deadline))
        return (f"Green has held {self.watching} within its SLOs (plan `{plan.name}`). **{APPROVE}** moves green to "
                f"{self.asking}; **{REJECT}** rolls back (flags -> Rails, traffic -> blue).\n\n"
                f"While this waits, the SLO gate keeps judging {self.watching}: a breach rolls back at once and "
                f"closes this request.\n\nWho may answer: {', '.join(policy.assigned_users)}. "
                f"No answer by {until} ({policy.timeout_seconds} s) counts as {REJECT}.")

    def build_trigger(self, context: Any, plan: Any, asked_at: float, ti_id: str):
        from cutover_kit.triggers.approval import ApprovalWatchTrigger

        ti = context["ti"]
        weights = ti.xcom_pull(task_ids=self.watching_weights_task_id)
        if not isinstance(weights, dict) or "set_at" not in weights:
            raise AirflowFailException(f"Approval of {self.asking}: no weights from {self.watching_weights_task_id}, "
                                       f"so {self.watching} cannot be watched while waiting; not asking")
        baseline = ti.xcom_pull(task_ids=self.baseline_task_id) if self.baseline_task_id else None
        return ApprovalWatchTrigger(
            ti_id=str(ti_id), asking=self.asking, watching=self.watching,
            deadline=asked_at + plan.approvals.timeout_seconds,
            step_label=f"{self.watching} (awaiting approval of {self.asking})",
            plan=plan.to_dict(), bake_seconds=float(plan.bake_seconds),
            step_timeout_seconds=float(plan.approvals.timeout_seconds),
            gate_started_at=asked_at, weights_set_at=float(weights["set_at"]),
            blue_baseline=baseline.get("window") if isinstance(baseline, dict) else None,
            prometheus_conn_id=self.prometheus_conn_id, haproxy_conn_id=self.haproxy_conn_id,
            state_conn_id=self.state_conn_id, dag_id=ti.dag_id, run_id=context["run_id"],
            green_percent=float(weights.get("percent", self.watching_percent)),
            # The watched step halts on a critical alert for green too (when the Connection resolves).
            alertmanager_conn_id=connections.ALERTMANAGER,
        )

    def execute(self, context: Any) -> Any:
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        from cutover_kit.stages._shared import ensure_not_stopped

        plan = self._plan(context)
        asked_at = time.time()
        record = immediate_record(plan.approvals, self.percent, plan.name, asked_at)
        if record is not None:
            return self._finish(context, record)
        ensure_not_stopped(f"ask approval of {self.asking}")  # a latched stop: no request, the run rolls back
        policy = plan.approvals
        # The provider's HITLOperator.execute, with the plan's values: the request record first...
        self.assigned_users = [{"id": user, "name": user} for user in policy.assigned_users]
        self.response_timeout = timedelta(seconds=policy.timeout_seconds)
        deadline = asked_at + policy.timeout_seconds
        self.body = self._body(plan, deadline)
        ti_id = context["task_instance"].id
        trigger = self.build_trigger(context, plan, asked_at, ti_id)  # refuses before asking if it cannot watch
        upsert_hitl_detail(ti_id=ti_id, options=self.options, subject=self.subject, body=self.body,
                           defaults=self.defaults, multiple=self.multiple, params=self.serialized_params,
                           assigned_users=self.assigned_users)
        self.log.info("Approval of %s asked of %s, deadline %s s (then %s); %s stays judged while waiting",
                      self.asking, ", ".join(policy.assigned_users), policy.timeout_seconds, REJECT, self.watching)
        # ...then the notifiers (the webhook request with its link), then the wait, on our trigger.
        for notifier in self.notifiers:
            notifier(context)
        self.defer(trigger=trigger, method_name="execute_complete",
                   timeout=timedelta(seconds=policy.timeout_seconds) + DEFERRAL_MARGIN)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event:
            raise AirflowFailException(f"Approval of {self.asking}: the trigger returned no event")
        plan = self._plan(context)
        policy = plan.approvals
        outcome = ApprovalOutcome(event["approval_outcome"])
        answer = event.get("answer") or {}
        asked_at = float(event.get("asked_at") or float(event["decided_at"]) - float(event.get("elapsed_seconds") or 0.0))
        if answer:
            approver, chosen = answer.get("responded_by"), answer.get("chosen_options") or []
        elif outcome is ApprovalOutcome.TIMED_OUT:
            approver, chosen = "nobody (timeout: the safe default)", [REJECT]
        else:
            approver, chosen = None, []
        record = approval_record(
            outcome, step=self.asking, line=event["line"], asked_at=asked_at,
            decided_at=float(answer.get("responded_at") or event["decided_at"]), approver=approver,
            chosen_options=chosen, assigned_users=policy.assigned_users if policy else (),
            timeout_seconds=policy.timeout_seconds if policy else None,
            watch={key: event.get(key) for key in WATCH_FIELDS if key in event})
        self._finish(context, record)
        if outcome is ApprovalOutcome.WATCH_HALTED:
            raise AirflowFailException(record["line"])
        return record
