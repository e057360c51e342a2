"""SLOGateOperator: gate one traffic step on SLOs measured against live blue, without holding a
worker slot: it defers at once to :class:`~cutover_kit.triggers.slo_gate.SLOGateTrigger`.

A plain operator that defers, like the providers-standard HITL operators, not a sensor: a gate
can never pass on a first look, so there is nothing to poke, and a sensor's ``timeout``, ``mode``
and ``poke_interval`` would be silently ignored. They are refused instead. The wait is bounded by
the deferral timeout: the gate's own step timeout plus :data:`DEFERRAL_MARGIN` (the trigger always
decides by its step timeout; the margin only ends a gate whose triggerer was lost, and a timed-out
deferral fails the task, it never passes), or ``deferral_timeout`` when given.

The gate result is always pushed to XCom (key ``gate_result``) so the branch after the gate can
route on it; a halt or timeout then fails this task *without retries* (a retry could re-judge a
real breach as healthy and promote).

The plan and the blue baseline are pulled by task id at execute time rather than passed as
XComArgs: an XComArg would add a dependency edge that bypasses the step chain, so a failure far
upstream would mark every gate upstream_failed and wake every step's branch.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Sequence

from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk import BaseOperator

from cutover_kit import connections
from cutover_kit.integrity import data_window_start
from cutover_kit.triggers.slo_gate import SLOGateTrigger

GATE_RESULT_KEY = "gate_result"
DEFERRAL_MARGIN = timedelta(seconds=120)
# BaseSensorOperator's arguments: meaningless for a gate that defers at once, so refused by name.
SENSOR_ONLY_ARGUMENTS = ("mode", "poke_interval", "timeout", "soft_fail", "exponential_backoff", "max_wait",
                         "silent_fail", "never_fail")


class SLOGateOperator(BaseOperator):
    template_fields: Sequence[str] = ("plan", "weights_set_at", "blue_baseline", "acknowledged_writes_file")

    def __init__(
        self,
        *,
        step_label: str,
        weights_set_at: Any,
        plan: dict[str, Any] | None = None,
        plan_task_id: str | None = None,
        blue_baseline: dict[str, Any] | None = None,
        baseline_task_id: str | None = None,
        bake_seconds_field: str = "bake_seconds",
        prometheus_conn_id: str = connections.PROMETHEUS,
        haproxy_conn_id: str | None = connections.HAPROXY,
        state_conn_id: str | None = connections.REDIS,
        postgres_conn_id: str | None = connections.POSTGRES,
        alertmanager_conn_id: str | None = connections.ALERTMANAGER,
        acknowledged_writes_file: str | None = None,
        error_tracking_conn_id: str | None = None,
        deferral_timeout: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        task_id = kwargs.get("task_id")
        sensor_arguments = sorted(set(kwargs) & set(SENSOR_ONLY_ARGUMENTS))
        if sensor_arguments:
            raise TypeError(
                f"{task_id}: {', '.join(sensor_arguments)} would be ignored: the SLO gate is an operator that "
                f"defers to its trigger at once, it never pokes or reschedules; its wait ends at the plan's "
                f"step timeout + {DEFERRAL_MARGIN.total_seconds():.0f} s, or at deferral_timeout=timedelta(...)"
            )
        if deferral_timeout is not None and (
            not isinstance(deferral_timeout, timedelta) or deferral_timeout <= timedelta(0)
        ):
            raise ValueError(f"{task_id}: deferral_timeout must be a positive timedelta; got {deferral_timeout!r}")
        super().__init__(**kwargs)
        if (plan is None) == (plan_task_id is None):
            raise ValueError(f"{task_id}: give exactly one of plan or plan_task_id")
        self.deferral_timeout = deferral_timeout
        self.step_label = step_label
        self.plan = plan
        self.plan_task_id = plan_task_id
        self.baseline_task_id = baseline_task_id
        self.weights_set_at = weights_set_at
        self.blue_baseline = blue_baseline
        self.bake_seconds_field = bake_seconds_field
        self.prometheus_conn_id = prometheus_conn_id
        self.haproxy_conn_id = haproxy_conn_id
        self.state_conn_id = state_conn_id
        # The integrity probe's database (None: no probe) and the run's ledger of acknowledged writes.
        self.postgres_conn_id = postgres_conn_id
        self.acknowledged_writes_file = acknowledged_writes_file
        # Critical alerts as a gate input, when this Connection resolves (None: never consulted).
        self.alertmanager_conn_id = alertmanager_conn_id
        # The error tracker (None: not asked); blue's known exception types count from the run's start.
        self.error_tracking_conn_id = error_tracking_conn_id
        self._run_started_at: float | None = None
        # (dag_id, run_id) of the run, set at execute: the trigger's heartbeat names it.
        self._run_identity: tuple[str, str] | None = None

    def _timings(self) -> tuple[float, float]:
        """Bake and timeout for this gate. The standby watch bakes for ``standby_seconds``."""
        bake = float(self.plan[self.bake_seconds_field])
        extra_hold = float(self.plan["step_timeout_seconds"]) - float(self.plan["bake_seconds"])
        return bake, bake + extra_hold

    def build_trigger(self) -> SLOGateTrigger:
        bake, timeout = self._timings()
        weights_set_at, green_percent, data_since = self.weights_set_at, None, None
        if isinstance(weights_set_at, dict):  # set_traffic's result: when, and which share
            green_percent = weights_set_at.get("percent")
            data_since = data_window_start(weights_set_at)
            weights_set_at = weights_set_at["set_at"]
        baseline = self.blue_baseline.get("window") if isinstance(self.blue_baseline, dict) else None
        return SLOGateTrigger(
            step_label=self.step_label,
            plan=self.plan,
            bake_seconds=bake,
            step_timeout_seconds=timeout,
            gate_started_at=time.time(),
            weights_set_at=float(weights_set_at),
            blue_baseline=baseline,
            prometheus_conn_id=self.prometheus_conn_id,
            haproxy_conn_id=self.haproxy_conn_id,
            state_conn_id=self.state_conn_id,
            dag_id=self._run_identity[0] if self._run_identity else None,
            run_id=self._run_identity[1] if self._run_identity else None,
            green_percent=None if green_percent is None else float(green_percent),
            postgres_conn_id=self.postgres_conn_id,
            acknowledged_writes_file=self.acknowledged_writes_file or None,
            data_since=data_since,
            alertmanager_conn_id=self.alertmanager_conn_id,
            error_tracking_conn_id=self.error_tracking_conn_id,
            run_started_at=self._run_started_at,
        )

    def _pull_inputs(self, context: Any) -> None:
        ti = context["ti"]
        self._run_identity = (ti.dag_id, context["run_id"])
        started = getattr(context.get("dag_run"), "start_date", None)
        self._run_started_at = started.timestamp() if started is not None else None
        if self.plan_task_id:
            self.plan = ti.xcom_pull(task_ids=self.plan_task_id)
            if not self.plan:
                raise AirflowFailException(f"Gate at {self.step_label}: no plan from {self.plan_task_id}")
        if self.baseline_task_id:
            self.blue_baseline = ti.xcom_pull(task_ids=self.baseline_task_id)

    def _deferral_timeout(self, trigger: SLOGateTrigger) -> timedelta:
        if self.deferral_timeout is None:
            return timedelta(seconds=trigger.step_timeout_seconds) + DEFERRAL_MARGIN
        if self.deferral_timeout.total_seconds() < trigger.step_timeout_seconds:
            # Refused before deferring: the task would die at the deferral timeout without the
            # gate's verdict or its reflex rollback, leaving green with its share.
            raise AirflowFailException(
                f"Gate at {self.step_label}: deferral_timeout {self.deferral_timeout.total_seconds():g} s is shorter "
                f"than the step timeout {trigger.step_timeout_seconds:g} s; the gate would die without a verdict "
                "or its reflex rollback")
        return self.deferral_timeout

    def execute(self, context: Any) -> None:
        self._pull_inputs(context)
        trigger = self.build_trigger()
        timeout = self._deferral_timeout(trigger)
        self.log.info("Gate at %s: deferring, bake %s s, step timeout %s s, deferral timeout %s s", self.step_label,
                      trigger.bake_seconds, trigger.step_timeout_seconds, timeout.total_seconds())
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timeout)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event:
            raise AirflowFailException(f"Gate at {self.step_label}: the trigger returned no event")
        context["ti"].xcom_push(key=GATE_RESULT_KEY, value=event)
        self.log.info(event["line"])
        if event.get("status") != "success":
            raise AirflowFailException(event["line"])
        return event
