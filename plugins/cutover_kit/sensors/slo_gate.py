"""SLOGateSensor: gate one traffic step on SLOs measured against live blue, without holding a
worker slot: it defers at once to :class:`~cutover_kit.triggers.slo_gate.SLOGateTrigger`.

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
from airflow.sdk import BaseSensorOperator

from cutover_kit.triggers.slo_gate import SLOGateTrigger

GATE_RESULT_KEY = "gate_result"


class SLOGateSensor(BaseSensorOperator):
    template_fields: Sequence[str] = ("plan", "weights_set_at", "blue_baseline")

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
        prometheus_conn_id: str = "prometheus_default",
        haproxy_conn_id: str | None = "haproxy_default",
        state_conn_id: str | None = "redis_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (plan is None) == (plan_task_id is None):
            raise ValueError(f"{kwargs.get('task_id')}: give exactly one of plan or plan_task_id")
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

    def _timings(self) -> tuple[float, float]:
        """Bake and timeout for this gate. The standby watch bakes for ``standby_seconds``."""
        bake = float(self.plan[self.bake_seconds_field])
        extra_hold = float(self.plan["step_timeout_seconds"]) - float(self.plan["bake_seconds"])
        return bake, bake + extra_hold

    def build_trigger(self) -> SLOGateTrigger:
        bake, timeout = self._timings()
        weights_set_at = self.weights_set_at
        if isinstance(weights_set_at, dict):
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
        )

    def poke(self, context: Any) -> bool:
        # A gate can never pass on its first look: the bake window has not elapsed yet.
        return False

    def _pull_inputs(self, context: Any) -> None:
        ti = context["ti"]
        if self.plan_task_id:
            self.plan = ti.xcom_pull(task_ids=self.plan_task_id)
            if not self.plan:
                raise AirflowFailException(f"Gate at {self.step_label}: no plan from {self.plan_task_id}")
        if self.baseline_task_id:
            self.blue_baseline = ti.xcom_pull(task_ids=self.baseline_task_id)

    def execute(self, context: Any) -> None:
        self._pull_inputs(context)
        if not self.poke(context):
            trigger = self.build_trigger()
            # A trigger that never reports (triggerer lost) must still end the step: fail late, never pass.
            deadline = timedelta(seconds=trigger.step_timeout_seconds + 120)
            self.defer(trigger=trigger, method_name="execute_complete", timeout=deadline)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event:
            raise AirflowFailException(f"Gate at {self.step_label}: the trigger returned no event")
        context["ti"].xcom_push(key=GATE_RESULT_KEY, value=event)
        self.log.info(event["line"])
        if event.get("status") != "success":
            raise AirflowFailException(event["line"])
        return event
