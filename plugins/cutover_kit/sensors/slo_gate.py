"""SLOGateSensor: gate one traffic step on SLOs measured against live blue, without holding a
worker slot: it defers at once to :class:`~cutover_kit.triggers.slo_gate.SLOGateTrigger`.

The gate result is always pushed to XCom (key ``gate_result``) so the branch after the gate can
route on it; a halt or timeout then fails this task *without retries* (a retry could re-judge a
real breach as healthy and promote).
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
        plan: Any,
        weights_set_at: Any,
        blue_baseline: Any = None,
        bake_seconds_field: str = "bake_seconds",
        prometheus_conn_id: str = "prometheus_default",
        haproxy_conn_id: str | None = "haproxy_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.step_label = step_label
        self.plan = plan
        self.weights_set_at = weights_set_at
        self.blue_baseline = blue_baseline
        self.bake_seconds_field = bake_seconds_field
        self.prometheus_conn_id = prometheus_conn_id
        self.haproxy_conn_id = haproxy_conn_id

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
        )

    def poke(self, context: Any) -> bool:
        # A gate can never pass on its first look: the bake window has not elapsed yet.
        return False

    def execute(self, context: Any) -> None:
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
