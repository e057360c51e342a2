"""SLOGateTrigger: polls Prometheus through a traffic step's bake window and yields one verdict.

Every ``poll_interval_seconds`` it measures green and blue over the trailing judging window,
asks the pure judge for a verdict and the pure gate for a decision, and logs one line. It ends
with exactly one TriggerEvent whose ``status`` is "success" (promote), "failed" (SLO breach) or
"inconclusive" (never enough healthy data before the step timeout).

Reflex rollback: when ``haproxy_conn_id`` is set, a halt first flips the plan's feature flags to
Rails (verified in the flag store and in every app), then puts 100 % of traffic back on blue,
verified by read-back, from inside the trigger, before the event is even delivered. Waiting for the
scheduler to run a rollback task costs seconds of user-facing errors; the DAG's rollback tasks
then re-assert the same absolute state (idempotent) and verify it end to end.

Emergency stop: when ``state_conn_id`` is set, every poll first reads the shared cutover state
(cutover_kit.control); a latched stop halts the gate at once with the operator's reason, and an
unreadable state makes that poll INCONCLUSIVE (a gate never passes on an unknown).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from asgiref.sync import sync_to_async
from airflow.triggers.base import BaseTrigger, TriggerEvent

from cutover_kit.gate import GateDecision, GateProgress, advance_gate, decision_line, initial_credit_start, judging_window_seconds
from cutover_kit.measure import measure_color
from cutover_kit.plan import CutoverPlan
from cutover_kit.slo import ColorWindow, Judgement, Verdict, judge_window


class SLOGateTrigger(BaseTrigger):
    def __init__(
        self,
        *,
        step_label: str,
        plan: dict[str, Any],
        bake_seconds: float,
        step_timeout_seconds: float,
        gate_started_at: float,
        weights_set_at: float,
        blue_baseline: dict[str, Any] | None = None,
        prometheus_conn_id: str = "prometheus_default",
        haproxy_conn_id: str | None = None,
        state_conn_id: str | None = None,
    ) -> None:
        super().__init__()
        self.step_label = step_label
        self.plan = plan
        self.bake_seconds = bake_seconds
        self.step_timeout_seconds = step_timeout_seconds
        self.gate_started_at = gate_started_at
        self.weights_set_at = weights_set_at
        self.blue_baseline = blue_baseline
        self.prometheus_conn_id = prometheus_conn_id
        self.haproxy_conn_id = haproxy_conn_id
        self.state_conn_id = state_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "step_label": self.step_label,
                "plan": self.plan,
                "bake_seconds": self.bake_seconds,
                "step_timeout_seconds": self.step_timeout_seconds,
                "gate_started_at": self.gate_started_at,
                "weights_set_at": self.weights_set_at,
                "blue_baseline": self.blue_baseline,
                "prometheus_conn_id": self.prometheus_conn_id,
                "haproxy_conn_id": self.haproxy_conn_id,
                "state_conn_id": self.state_conn_id,
            },
        )

    def _measure(self, hook: Any, plan: CutoverPlan, window: int) -> tuple[ColorWindow, ColorWindow]:
        quantiles = tuple(plan.slo.quantiles)
        return measure_color(hook, "green", window, quantiles), measure_color(hook, "blue", window, quantiles)

    async def _judge_once(self, hook: Any, plan: CutoverPlan, baseline: ColorWindow | None) -> tuple[Judgement, dict]:
        from cutover_kit.hooks.prometheus import PrometheusUnavailable

        window = judging_window_seconds(time.time() - self.weights_set_at, plan.window_seconds)
        try:
            green, blue = await sync_to_async(self._measure)(hook, plan, window)
        except PrometheusUnavailable as error:
            return Judgement(Verdict.INCONCLUSIVE, f"Prometheus unavailable: {error}"), {}
        judgement = judge_window(
            green, blue, plan.slo, min_requests=plan.min_requests, window_seconds=window, blue_baseline=baseline
        )
        return judgement, {"window_seconds": window, "green": green.to_dict(), "blue": blue.to_dict()}


    async def _emergency_stop(self) -> tuple[Any, str | None]:
        """(latched stop or None, error text if the shared state could not be read)."""
        if not self.state_conn_id:
            return None, None
        from cutover_kit.control import CutoverStateError
        from cutover_kit.hooks.cutover_state import CutoverStateHook

        try:
            return await sync_to_async(CutoverStateHook(self.state_conn_id).emergency_stop)(), None
        except CutoverStateError as error:
            return None, str(error)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from cutover_kit.hooks.prometheus import PrometheusHook

        plan = CutoverPlan.from_dict(self.plan)
        baseline = ColorWindow.from_dict(self.blue_baseline) if self.blue_baseline else None
        hook = PrometheusHook(self.prometheus_conn_id)
        # The first PASS credits the window it judged (at most window_seconds back), never the
        # whole time since the weights were set: a trigger restarted by the triggerer (its progress
        # is not persisted) must not credit time it did not judge.
        progress = GateProgress(last_elapsed_seconds=initial_credit_start(time.time() - self.gate_started_at,
                                                                          plan.window_seconds))
        stop = None
        while True:
            stop, state_error = await self._emergency_stop()
            elapsed = time.time() - self.gate_started_at
            if stop is not None:
                from cutover_kit.control import emergency_halt_line

                judgement, measurements = Judgement(Verdict.FAIL, stop.describe()), {}
                decision, line = GateDecision.HALT, emergency_halt_line(self.step_label, stop)
                self.log.info(line)
                break
            judgement, measurements = await self._judge_once(hook, plan, baseline)
            if state_error:
                judgement = Judgement(Verdict.INCONCLUSIVE, f"cutover state unreadable: {state_error}")
            elapsed = time.time() - self.gate_started_at
            progress, decision = advance_gate(
                progress,
                judgement,
                elapsed,
                bake_seconds=self.bake_seconds,
                step_timeout_seconds=self.step_timeout_seconds,
                consecutive_breach_limit=plan.consecutive_breaches,
            )
            line = decision_line(decision, self.step_label, judgement, progress)
            self.log.info(line, extra={"gate": {**vars(progress), "step": self.step_label, "bake_seconds": self.bake_seconds,
                                                "decision": decision.value, "verdict": judgement.verdict.value, "reason": judgement.reason}})
            if decision is not GateDecision.CONTINUE:
                break
            await asyncio.sleep(plan.poll_interval_seconds)

        event: dict[str, Any] = {
            "status": decision.value,
            "step": self.step_label,
            "line": line,
            "verdict": judgement.verdict.value,
            "reason": judgement.reason,
            "decided_at": time.time(),
            "elapsed_seconds": round(elapsed, 3),
            "polls": progress.polls,
            "measurements": measurements,
        }
        if stop is not None:
            event["emergency_stop"] = stop.to_json()
        if decision is not GateDecision.PROMOTE and self.haproxy_conn_id:
            from cutover_kit.stages.traffic import log_reflex, restore_blue_now

            # Two levels, in order: flags -> Rails (verified in the store and every app), then traffic.
            event.update(await sync_to_async(restore_blue_now)(self.haproxy_conn_id, plan.flag_backend))
            log_reflex(event, self.log)
        yield TriggerEvent(event)
