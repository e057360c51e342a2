"""SLOGateTrigger: polls Prometheus through a traffic step's bake window and yields one verdict.

Every ``poll_interval_seconds`` it measures green and blue over the trailing judging window,
asks the pure judge for a verdict and the pure gate for a decision, and logs one line. It ends
with exactly one TriggerEvent whose ``status`` is "success" (promote), "failed" (SLO breach,
emergency stop, or an error of the gate itself) or "inconclusive" (never enough healthy data
before the step timeout).

Reflex rollback: when ``haproxy_conn_id`` is set, any end but a promote first flips the plan's
feature flags to Rails (verified in the flag store and in every app), then puts 100 % of traffic
back on blue, verified by read-back, from inside the trigger, before the event is even delivered. Waiting for the
scheduler to run a rollback task costs seconds of user-facing errors; the DAG's rollback tasks
then re-assert the same absolute state (idempotent) and verify it end to end.

Emergency stop: when ``state_conn_id`` is set, every poll first reads the shared cutover state
(cutover_kit.control); a latched stop halts the gate at once with the operator's reason, and an
unreadable state makes that poll INCONCLUSIVE (a gate never passes on an unknown).

Measurement errors (Prometheus down, timing out or refusing a query, several series, a
non-number, a body that is not Prometheus JSON) make that poll INCONCLUSIVE with a reason naming
the color, the measure and the query. Anything else that goes wrong inside the gate still ends it
with a "failed" event carrying the error, after the reflex rollback: a gate that dies silently
would leave green serving users with nobody watching.

Three small seams, overridden by the unit tests and never serialized: :meth:`_metrics_source`,
:meth:`_read_emergency_stop` and :meth:`_reflex_rollback`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from asgiref.sync import sync_to_async
from airflow.triggers.base import BaseTrigger, TriggerEvent

from cutover_kit import connections
from cutover_kit.control import CutoverStateError, EmergencyStop, emergency_halt_line
from cutover_kit.gate import GateDecision, GateProgress, advance_gate, decision_line, initial_credit_start, judging_window_seconds
from cutover_kit.measure import MeasurementError, MetricsSource, measure_color
from cutover_kit.plan import OPTIONAL_FIELD_DEFAULTS, CutoverPlan
from cutover_kit.runbooks import with_runbook
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
        prometheus_conn_id: str = connections.PROMETHEUS,
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

    def _metrics_source(self) -> MetricsSource:
        from cutover_kit.hooks.prometheus import PrometheusHook

        return PrometheusHook(self.prometheus_conn_id)

    def _read_emergency_stop(self) -> EmergencyStop | None:
        """The latched stop or None; raises CutoverStateError when the state cannot be read."""
        from cutover_kit.hooks.levers import read_emergency_stop

        return read_emergency_stop(self.state_conn_id)

    def _reflex_rollback(self, event: dict[str, Any], flag_backend: str | None) -> None:
        """Flags -> Rails (verified in the store and every app), then traffic -> 100 % blue (read
        back); the facts go into ``event`` and one log line per level. Runs in a worker thread.
        The trigger's only use of the shared reflex action, so where that action lives is one line here."""
        from cutover_kit.actions.rollback import log_reflex, restore_blue_now
        from cutover_kit.hooks.levers import connected_levers

        event.update(restore_blue_now(connected_levers(self.haproxy_conn_id), flag_backend))
        log_reflex(event, self.log)

    def _measure(self, source: MetricsSource, plan: CutoverPlan, window: int) -> tuple[ColorWindow, ColorWindow]:
        quantiles = tuple(plan.slo.quantiles)
        return (measure_color(source, "green", window, quantiles, plan.metrics),
                measure_color(source, "blue", window, quantiles, plan.metrics))

    async def _judge_once(self, source: MetricsSource, plan: CutoverPlan, baseline: ColorWindow | None) -> tuple[Judgement, dict]:
        window = judging_window_seconds(time.time() - self.weights_set_at, plan.window_seconds)
        try:
            green, blue = await sync_to_async(self._measure)(source, plan, window)
        except MeasurementError as error:
            return Judgement(Verdict.INCONCLUSIVE, str(error)), {}
        judgement = judge_window(
            green, blue, plan.slo, min_requests=plan.min_requests, window_seconds=window, blue_baseline=baseline,
            judge_latency=plan.metrics.latency_available,
        )
        return judgement, {"window_seconds": window, "green": green.to_dict(), "blue": blue.to_dict()}

    async def _emergency_stop(self) -> tuple[EmergencyStop | None, str | None]:
        """(latched stop or None, error text if the shared state could not be read)."""
        if not self.state_conn_id:
            return None, None
        try:
            return await sync_to_async(self._read_emergency_stop)(), None
        except CutoverStateError as error:
            return None, str(error)

    async def _watch(self, plan: CutoverPlan) -> dict[str, Any]:
        """Poll until the gate decides; the event without the reflex rollback's facts."""
        baseline = ColorWindow.from_dict(self.blue_baseline) if self.blue_baseline else None
        source = self._metrics_source()
        # The first PASS credits the window it judged (at most window_seconds back), never the
        # whole time since the weights were set: a trigger restarted by the triggerer (its progress
        # is not persisted) must not credit time it did not judge.
        progress = GateProgress(last_elapsed_seconds=initial_credit_start(time.time() - self.gate_started_at,
                                                                          plan.window_seconds))
        while True:
            stop, state_error = await self._emergency_stop()
            elapsed = time.time() - self.gate_started_at
            if stop is not None:
                judgement, measurements = Judgement(Verdict.FAIL, stop.describe()), {}
                decision, line = GateDecision.HALT, emergency_halt_line(self.step_label, stop)
                self.log.info(line)
                break
            judgement, measurements = await self._judge_once(source, plan, baseline)
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
        return event

    def _gate_error_event(self, error: Exception) -> dict[str, Any]:
        reason = f"the gate itself failed, so green is not judged: {type(error).__name__}: {error}"
        return {
            "status": GateDecision.HALT.value,
            "step": self.step_label,
            "line": with_runbook(f"Halt at {self.step_label}: {reason}"),
            "verdict": Verdict.INCONCLUSIVE.value,
            "reason": reason,
            "decided_at": time.time(),
            "elapsed_seconds": round(time.time() - self.gate_started_at, 3),
            "polls": None,
            "measurements": {},
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        plan: CutoverPlan | None = None
        try:
            plan = CutoverPlan.from_dict(self.plan)
            event = await self._watch(plan)
        # Any end but a promote rolls back, an unexpected error included. asyncio.CancelledError (the
        # triggerer handing the gate to another triggerer) is not an Exception: it must not roll back.
        except Exception as error:  # noqa: BLE001
            event = self._gate_error_event(error)
            self.log.exception(event["line"])
        if event["status"] != GateDecision.PROMOTE.value and self.haproxy_conn_id:
            # An unreadable plan still names its flag store in the raw dict; the flag lever reports
            # (never raises) if even that is wrong, and the traffic lever runs regardless.
            flag_backend = plan.flag_backend if plan else self.plan.get("flag_backend", OPTIONAL_FIELD_DEFAULTS["flag_backend"])
            try:
                await sync_to_async(self._reflex_rollback)(event, flag_backend)
            except Exception as error:  # noqa: BLE001 - the rollback tasks retry it; the event must still go out
                event["reflex_error"] = f"{type(error).__name__}: {error}"
                self.log.exception("Reflex rollback raised, leaving it to the rollback tasks: %s", error)
        yield TriggerEvent(event)
