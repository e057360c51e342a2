"""SLOGateTrigger: polls Prometheus through a traffic step's bake window and yields one verdict.

Every ``poll_interval_seconds`` it measures green and blue over the trailing judging window,
asks the pure judge for a verdict and the pure gate for a decision, and logs one line. It ends
with exactly one TriggerEvent whose ``status`` is "success" (promote), "failed" (SLO breach,
emergency stop, or an error of the gate itself) or "inconclusive" (never enough healthy data
before the step timeout).

Reflex rollback: when ``haproxy_conn_id`` is set, any end but a promote first flips the plan's
feature flags to Rails (verified in the flag store and in every app), then puts 100 % of traffic
back on blue in the plan's router (HAProxy, or the gateway_api HTTPRoute), verified by read-back,
from inside the trigger, before the event is even delivered. Waiting for the
scheduler to run a rollback task costs seconds of user-facing errors; the DAG's rollback tasks
then re-assert the same absolute state (idempotent) and verify it end to end.

Emergency stop: when ``state_conn_id`` is set, every poll first reads the shared cutover state
(cutover_kit.control); a latched stop halts the gate at once with the operator's reason, and an
unreadable state makes that poll INCONCLUSIVE (a gate never passes on an unknown).

Data loss and corruption (cutover_kit.integrity): when ``postgres_conn_id`` is set, every poll
first runs the integrity probe on the rows written since the weights changed (``data_since``:
the instant before the router was told; stage 11 probed the same rows once already) (old and new
columns in agreement; every write in the ``acknowledged_writes_file`` ledger above the step's
watermark present). Any violation halts at once, without the consecutive-breach wait, and the
reflex rollback runs; the line names the table, the column and a row id. Without a ledger the
probe checks agreement only, and the line says so. A probe that cannot read the database makes a
healthy poll INCONCLUSIVE (it never excuses an SLO breach).

The whole "monitor closely" list (cutover_kit.measure_vitals, cutover_kit.vitals): every poll also
measures p50/p95/p99, jobs, WebSockets, memory, CPU and database statement time per color, judges
the plan's optional limits on them with the SLOs, and names the route and the statement slowest on
green vs blue (APM, informative) in the line and the event's ``measurements.whole_list``.

Measurement errors (Prometheus down, timing out or refusing a query, several series, a
non-number, a body that is not Prometheus JSON) make that poll INCONCLUSIVE with a reason naming
the color, the measure and the query. Anything else that goes wrong inside the gate still ends it
with a "failed" event carrying the error, after the reflex rollback: a gate that dies silently
would leave green serving users with nobody watching.

Heartbeat (the dead-man's switch, cutover_kit.dead_man): when ``state_conn_id``, ``dag_id`` and
``run_id`` are set, every poll writes the gate's heartbeat and progress to the shared state, and
the gate's end writes a last one marked ended. The ``gate_watchdog`` DAG rolls back when the
heartbeat of a gate guarding traffic on green goes silent. A trigger restarted by the triggerer
(same gate: same run, step and deferral) resumes that progress instead of baking from zero: a
pending breach is not forgotten and no unjudged time is credited; if the gate had already decided,
the restarted trigger delivers that decision again (and re-runs the idempotent reflex rollback).
A heartbeat that cannot be written is logged and never stops the gate.

Critical alerts (cutover_kit.observability.alert_gate): when ``alertmanager_conn_id`` is set and
that Connection resolves, every poll reads Alertmanager's /api/v2/alerts: an active critical alert
for green halts at once (its rule already waited out the noise) and the line names it; an
Alertmanager that cannot be read makes a healthy poll INCONCLUSIVE. Without the Connection the
gate judges as before and each line says alerts were not consulted. All in :meth:`_consult_alerts`.
Error tracking (cutover_kit.error_tracking): when ``error_tracking_conn_id`` is set, every poll
also asks the tracker which exception types green raised in the judging window and which blue
raised since ``run_started_at``; a new type is named in the line and the event
(``measurements.error_tracking``), and FAILs the poll when the plan's
``error_tracking.fail_on_new_exception_types`` says so (see :meth:`_judge_error_tracking`).

Two hooks for a gate that watches something else as well (the approval wait,
cutover_kit.triggers.approval): :meth:`_settle` turns each poll's decision into the one the gate
ends with, and :meth:`_event_extras` adds to the event.

Six small seams, overridden by the unit tests and never serialized: :meth:`_metrics_source`, :meth:`_integrity_probe`,
:meth:`_read_emergency_stop`, :meth:`_reflex_rollback`, :meth:`_write_heartbeat` and
:meth:`_read_heartbeat`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, AsyncIterator

from asgiref.sync import sync_to_async
from airflow.triggers.base import BaseTrigger, TriggerEvent

from cutover_kit import connections
from cutover_kit.actions.rollback import rollback_failure
from cutover_kit.control import CutoverStateError, EmergencyStop, emergency_halt_line
from cutover_kit.dead_man import GateHeartbeat, resumable_heartbeat
from cutover_kit.error_tracking import ErrorTrackingPolicy, judge_new_exception_types, with_error_tracking
from cutover_kit.integrity import IntegrityJudgement, integrity_halt_line, judge_integrity
from cutover_kit.gate import (
    GateDecision, GateProgress, advance_gate, decision_line, initial_credit_start, judging_window_seconds, resumed_progress,
)
from cutover_kit.measure import MeasurementError, MetricsSource, measure_color
from cutover_kit.observability.alert_gate import AlertCheck, alert_halt_line, check_answer, not_consulted, unreadable
from cutover_kit.plan import OPTIONAL_FIELD_DEFAULTS, CutoverPlan
from cutover_kit.runbooks import with_runbook
from cutover_kit.slo import ColorWindow, Judgement, Verdict, judge_window

if TYPE_CHECKING:  # psycopg2 stays out of DAG parsing: the probe is imported when a gate runs
    from cutover_kit.db.integrity_probe import IntegrityProbe
    from cutover_kit.hooks.error_tracking import ErrorTrackingHook
    from cutover_kit.measure_vitals import WholeListMeter, WholeListReading


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
        dag_id: str | None = None,
        run_id: str | None = None,
        green_percent: float | None = None,
        postgres_conn_id: str | None = None,
        acknowledged_writes_file: str | None = None,
        data_since: float | None = None,
        alertmanager_conn_id: str | None = None,
        error_tracking_conn_id: str | None = None,
        run_started_at: float | None = None,
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
        self.dag_id = dag_id
        self.run_id = run_id
        self.green_percent = green_percent
        self.postgres_conn_id = postgres_conn_id
        self.acknowledged_writes_file = acknowledged_writes_file or None
        # Where the probe's rows begin: the instant before the weights changed (None: weights_set_at).
        self.data_since = data_since
        self.alertmanager_conn_id = alertmanager_conn_id
        self._alerts_configured: bool | None = None  # resolved on the first poll
        self._alert_hook: Any = None
        # Error tracking: the tracker's Connection (None: not asked) and where blue's known types begin.
        self.error_tracking_conn_id = error_tracking_conn_id
        self.run_started_at = run_started_at
        self._heartbeat_failing = False

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
                "dag_id": self.dag_id,
                "run_id": self.run_id,
                "green_percent": self.green_percent,
                "postgres_conn_id": self.postgres_conn_id,
                "acknowledged_writes_file": self.acknowledged_writes_file,
                "data_since": self.data_since,
                "alertmanager_conn_id": self.alertmanager_conn_id,
                "error_tracking_conn_id": self.error_tracking_conn_id,
                "run_started_at": self.run_started_at,
            },
        )

    def _metrics_source(self) -> MetricsSource:
        from cutover_kit.hooks.prometheus import PrometheusHook

        return PrometheusHook(self.prometheus_conn_id)

    def _whole_list(self, plan: CutoverPlan) -> WholeListMeter:
        """The gate's meter of the whole list, kept for its life: statement time is the difference
        between its own readings of pg_stat_statements."""
        if getattr(self, "_whole_list_meter", None) is None:
            from cutover_kit.measure_vitals import connected_meter

            self._whole_list_meter = connected_meter(plan.metrics, self.postgres_conn_id)
        return self._whole_list_meter

    def _integrity_probe(self) -> IntegrityProbe:
        """The step's integrity probe: the shared database through its Connection, the rows since
        the weights were set, and the acknowledged-writes ledger when the run has one."""
        from cutover_kit.db.integrity_probe import IntegrityProbe
        from cutover_kit.hooks.postgres import connection_dsn

        since = self.weights_set_at if self.data_since is None else self.data_since
        return IntegrityProbe(lambda: connection_dsn(self.postgres_conn_id), since, self.acknowledged_writes_file)

    def _error_tracker(self) -> ErrorTrackingHook:
        from cutover_kit.hooks.error_tracking import ErrorTrackingHook

        return ErrorTrackingHook(self.error_tracking_conn_id)

    async def _judge_error_tracking(self, plan: CutoverPlan, judgement: Judgement, window: float) -> tuple[Judgement, dict]:
        """The poll's judgement with green's new exception types folded in, and the facts for the
        event. Green: the judging window; blue: every type since the run began (cutover_kit.error_tracking)."""
        if not self.error_tracking_conn_id:
            return judgement, {}
        policy = ErrorTrackingPolicy.from_plan(plan.error_tracking)
        now = time.time()
        blue_since = self.run_started_at if self.run_started_at is not None else self.gate_started_at
        try:
            tracker = self._error_tracker()
            green = await sync_to_async(tracker.exception_types)("green", now - window, now)
            blue = await sync_to_async(tracker.exception_types)("blue", blue_since, now)
        except Exception as error:  # noqa: BLE001 - an unreadable tracker is judged (with_error_tracking), never raised
            reason = f"{type(error).__name__}: {error}"
            return with_error_tracking(judgement, None, reason, policy), {"error": reason}
        tracking = judge_new_exception_types(green, blue, policy)
        return with_error_tracking(judgement, tracking, None, policy), tracking.to_dict()

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

        # The plan's router (haproxy_conn_id serves the haproxy router; gateway_api reads the plan's HTTPRoute).
        plan = CutoverPlan.from_dict(self.plan)
        event.update(restore_blue_now(connected_levers(self.haproxy_conn_id, plan=plan), flag_backend))
        log_reflex(event, self.log)

    def _alertmanager_connection_exists(self) -> bool:
        from cutover_kit.hooks.alertmanager import alertmanager_configured

        return alertmanager_configured(self.alertmanager_conn_id)

    def _read_alerts(self) -> Any:
        """Alertmanager's /api/v2/alerts JSON; raises AlertmanagerUnavailable when it cannot be read."""
        from cutover_kit.hooks.alertmanager import AlertmanagerHook

        if self._alert_hook is None:  # one hook (and HTTP session) for the whole gate
            self._alert_hook = AlertmanagerHook(self.alertmanager_conn_id)
        return self._alert_hook.get_alerts()

    async def _consult_alerts(self) -> AlertCheck:
        """This poll's word from Alertmanager (cutover_kit.observability.alert_gate): not consulted
        without a Connection, unreadable on any error, else the judgement of green's alerts."""
        if self._alerts_configured is None:
            self._alerts_configured = bool(self.alertmanager_conn_id) and await sync_to_async(self._alertmanager_connection_exists)()
        if not self._alerts_configured:
            return not_consulted(self.alertmanager_conn_id or connections.ALERTMANAGER)
        try:
            answer = await sync_to_async(self._read_alerts)()
        except Exception as error:  # noqa: BLE001 - an unreadable Alertmanager never passes: INCONCLUSIVE
            return unreadable(f"Alertmanager could not be read: {error}")
        return check_answer(answer, "green")

    def _write_heartbeat(self, heartbeat: GateHeartbeat) -> None:
        """Persist this poll; raises CutoverStateError when the state cannot be written."""
        from cutover_kit.hooks.levers import write_gate_heartbeat

        write_gate_heartbeat(heartbeat, self.state_conn_id)

    def _read_heartbeat(self) -> GateHeartbeat | None:
        """The latest persisted gate heartbeat (any gate's); raises CutoverStateError when unreadable."""
        from cutover_kit.hooks.levers import read_gate_heartbeat

        return read_gate_heartbeat(self.state_conn_id)

    @property
    def _beats(self) -> bool:
        return bool(self.state_conn_id and self.dag_id and self.run_id)

    async def _beat(self, poll_interval: float, judgement: Judgement, decision: GateDecision, line: str,
                    progress: GateProgress, flag_backend: str | None) -> None:
        """Write this poll's heartbeat; a failure is logged (once, then its recovery), never raised:
        the gate goes on judging, and the watchdog treats the silence as it should."""
        if not self._beats:
            return
        heartbeat = GateHeartbeat.of(
            dag_id=self.dag_id, run_id=self.run_id, step=self.step_label, gate_started_at=self.gate_started_at,
            at=time.time(), poll_interval=poll_interval, green_percent=self.green_percent,
            verdict=judgement.verdict.value, decision=decision, line=line, flag_backend=flag_backend, progress=progress)
        try:
            await sync_to_async(self._write_heartbeat)(heartbeat)
        except Exception as error:  # noqa: BLE001 - a lost heartbeat must not end the gate
            if not self._heartbeat_failing:
                self.log.warning("Gate at %s: heartbeat NOT written (the gate goes on judging; the watchdog will see "
                                 "it silent): %s", self.step_label, error)
            self._heartbeat_failing = True
            return
        if self._heartbeat_failing:
            self.log.info("Gate at %s: heartbeat written again", self.step_label)
            self._heartbeat_failing = False

    async def _resumable(self) -> GateHeartbeat | None:
        """This gate's persisted heartbeat, when the trigger was restarted mid-gate; logs why or why not."""
        if not self._beats:
            return None
        try:
            saved = await sync_to_async(self._read_heartbeat)()
        except CutoverStateError as error:
            self.log.warning("Gate at %s starts from zero: its persisted progress could not be read: %s",
                             self.step_label, error)
            return None
        heartbeat, line = resumable_heartbeat(saved, dag_id=self.dag_id, run_id=self.run_id, step=self.step_label,
                                              gate_started_at=self.gate_started_at, now=time.time())
        self.log.info(line)
        return heartbeat

    def _replayed_event(self, heartbeat: GateHeartbeat) -> dict[str, Any]:
        """The decision a gate took before its trigger restarted, delivered again (never re-judged)."""
        progress = heartbeat.gate_progress
        return {
            "status": heartbeat.decision,
            "step": self.step_label,
            "line": f"{heartbeat.line} (decided before the trigger restarted)",
            "verdict": heartbeat.verdict,
            "reason": f"decided before the trigger restarted: {heartbeat.line}",
            "decided_at": heartbeat.at,
            "elapsed_seconds": round(heartbeat.at - self.gate_started_at, 3),
            "polls": progress.polls,
            "measurements": {},
            "resumed": True,
        }

    def _measure(self, source: MetricsSource, plan: CutoverPlan, window: int) -> tuple[ColorWindow, ColorWindow, WholeListReading]:
        quantiles, z = tuple(plan.slo.quantiles), plan.slo.confidence_z
        # Both colors and the rest of the whole list (cutover_kit.measure_vitals), queried at once.
        return self._whole_list(plan).alongside(
            lambda: measure_color(source, "green", window, quantiles, plan.metrics, z),
            lambda: measure_color(source, "blue", window, quantiles, plan.metrics, z),
            source, window, self.green_percent, quantiles, quantiles[0])

    async def _judge_once(self, source: MetricsSource, plan: CutoverPlan, baseline: ColorWindow | None) -> tuple[Judgement, dict]:
        window = judging_window_seconds(time.time() - self.weights_set_at, plan.window_seconds)
        try:
            green, blue, whole_list = await sync_to_async(self._measure)(source, plan, window)
        except MeasurementError as error:
            return Judgement(Verdict.INCONCLUSIVE, str(error)), {}
        judgement = judge_window(
            green, blue, plan.slo, min_requests=plan.min_requests, window_seconds=window, blue_baseline=baseline,
            judge_latency=plan.metrics.latency_available,
        )
        judgement = self._whole_list(plan).judge(plan, whole_list, judgement)  # the plan's whole-list limits, APM
        judgement, tracking = await self._judge_error_tracking(plan, judgement, window)
        return judgement, {"window_seconds": window, "green": green.to_dict(), "blue": blue.to_dict(),
                           "whole_list": whole_list.to_dict(), **({"error_tracking": tracking} if tracking else {})}

    async def _probe_integrity(self, probe: IntegrityProbe | None) -> tuple[IntegrityJudgement | None, dict, str | None]:
        """(judgement or None when no probe runs, facts for the event, error text when it could not judge)."""
        if probe is None:
            return None, {}, None
        try:
            snapshot = await sync_to_async(probe.read)()
        except Exception as error:  # noqa: BLE001 - an unreadable database never passes, never fails: INCONCLUSIVE
            return None, {}, f"integrity probe could not read the database: {error}"
        judgement = judge_integrity(snapshot)
        return judgement, {**judgement.to_dict(), "seconds": snapshot.seconds, "rows_checked": dict(snapshot.rows_checked),
                           "watermarks": dict(snapshot.watermarks), "acknowledged": snapshot.acknowledged}, None

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
        # whole time since the weights were set: a restarted trigger must not credit time it did
        # not judge, whether it starts from zero or resumes its persisted progress.
        elapsed_at_start = time.time() - self.gate_started_at
        progress = GateProgress(last_elapsed_seconds=initial_credit_start(elapsed_at_start, plan.window_seconds))
        saved = await self._resumable()
        if saved is not None and saved.ended:
            return self._replayed_event(saved)
        if saved is not None:
            progress = resumed_progress(saved.gate_progress, elapsed_at_start, plan.window_seconds)
        probe = self._integrity_probe() if self.postgres_conn_id else None
        try:
            return await self._poll(plan, source, baseline, progress, probe)
        finally:
            if probe is not None:
                probe.close()
            if getattr(self, "_whole_list_meter", None) is not None:
                self._whole_list_meter.close()

    async def _poll(self, plan: CutoverPlan, source: MetricsSource, baseline: ColorWindow | None,
                    progress: GateProgress, probe: IntegrityProbe | None) -> dict[str, Any]:
        integrity: dict[str, Any] = {}
        alerts: AlertCheck | None = None  # the last poll's word from Alertmanager, for the event
        while True:
            stop, state_error = await self._emergency_stop()
            elapsed = time.time() - self.gate_started_at
            if stop is not None:
                judgement, measurements = Judgement(Verdict.FAIL, stop.describe()), {}
                decision, line = await self._settle(GateDecision.HALT, emergency_halt_line(self.step_label, stop))
                self.log.info(line)
                await self._beat(plan.poll_interval_seconds, judgement, decision, line, progress, plan.flag_backend)
                break
            # Data first: a lost or corrupted write halts at once, whatever the SLOs say (no
            # consecutive-breach wait: there is no noise to average out in a missing row).
            data, integrity, probe_error = await self._probe_integrity(probe)
            if data is not None and not data.intact:
                elapsed = time.time() - self.gate_started_at
                judgement, measurements = Judgement(Verdict.FAIL, data.reason), {}
                progress, _ = advance_gate(progress, judgement, elapsed, bake_seconds=self.bake_seconds,
                                           step_timeout_seconds=self.step_timeout_seconds, consecutive_breach_limit=1)
                decision, line = GateDecision.HALT, integrity_halt_line(self.step_label, data)
                self.log.info(line)
                await self._beat(plan.poll_interval_seconds, judgement, decision, line, progress, plan.flag_backend)
                break
            # A critical alert for green halts at once, like a data violation (see alert_gate's doc).
            alerts = await self._consult_alerts()
            if alerts.halts:
                elapsed = time.time() - self.gate_started_at
                judgement, measurements = alerts.judgement, {}
                progress, _ = advance_gate(progress, judgement, elapsed, bake_seconds=self.bake_seconds,
                                           step_timeout_seconds=self.step_timeout_seconds, consecutive_breach_limit=1)
                decision, line = await self._settle(GateDecision.HALT, alert_halt_line(self.step_label, alerts))
                self.log.info(line)
                await self._beat(plan.poll_interval_seconds, judgement, decision, line, progress, plan.flag_backend)
                break
            judgement, measurements = await self._judge_once(source, plan, baseline)
            judgement = alerts.apply_to(judgement)
            if state_error:
                judgement = Judgement(Verdict.INCONCLUSIVE, f"cutover state unreadable: {state_error}")
            elif probe_error:  # an unknown never passes, and never excuses a breach the SLOs found
                judgement = Judgement(Verdict.INCONCLUSIVE if judgement.verdict is Verdict.PASS else judgement.verdict,
                                      f"{judgement.reason}; {probe_error}")
            elif data is not None:  # the line says what the data probe saw (agreement only, when no ledger)
                judgement = Judgement(judgement.verdict, f"{judgement.reason}; {data.reason}")
            elapsed = time.time() - self.gate_started_at
            progress, decision = advance_gate(
                progress,
                judgement,
                elapsed,
                bake_seconds=self.bake_seconds,
                step_timeout_seconds=self.step_timeout_seconds,
                consecutive_breach_limit=plan.consecutive_breaches,
            )
            decision, line = await self._settle(decision, decision_line(decision, self.step_label, judgement, progress))
            self.log.info(line, extra={"gate": {**vars(progress), "step": self.step_label, "bake_seconds": self.bake_seconds,
                                                "decision": decision.value, "verdict": judgement.verdict.value, "reason": judgement.reason}})
            await self._beat(plan.poll_interval_seconds, judgement, decision, line, progress, plan.flag_backend)
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
        if integrity:
            event["integrity"] = integrity
        if alerts is not None:
            event["alerts"] = alerts.to_dict()
        if stop is not None:
            event["emergency_stop"] = stop.to_json()
        return {**event, **self._event_extras()}

    async def _settle(self, decision: GateDecision, line: str) -> tuple[GateDecision, str]:
        """The decision this poll ends with, and its line. A gate ends on its own decision; a gate
        that watches something else too (cutover_kit.triggers.approval) overrides this."""
        return decision, line

    def _event_extras(self) -> dict[str, Any]:
        """Fields a subclass adds to the event (nothing here)."""
        return {}

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
            # The gate has ended: the watchdog must see it ended (a halt whose rollback follows), not silent.
            poll_interval = plan.poll_interval_seconds if plan else 1.0
            await self._beat(poll_interval, Judgement(Verdict.INCONCLUSIVE, event["reason"]), GateDecision.HALT,
                             event["line"], GateProgress(), plan.flag_backend if plan else None)
        if event["status"] != GateDecision.PROMOTE.value and self.haproxy_conn_id:
            # An unreadable plan still names its flag store in the raw dict; the flag lever reports
            # (never raises) if even that is wrong, and the traffic lever runs regardless.
            flag_backend = plan.flag_backend if plan else self.plan.get("flag_backend", OPTIONAL_FIELD_DEFAULTS["flag_backend"])
            try:
                await sync_to_async(self._reflex_rollback)(event, flag_backend)
            except Exception as error:  # noqa: BLE001 - the rollback tasks retry it; the event must still go out
                event["reflex_error"] = f"{type(error).__name__}: {error}"
                self.log.exception("Reflex rollback raised, leaving it to the rollback tasks: %s", error)
            else:
                failure = rollback_failure(event)
                if failure:  # reported, not raised: the gate task fails on this event anyway, saying why
                    event["reflex_error"] = failure
                    self.log.error("Reflex rollback NOT verified, leaving it to the rollback tasks: %s", failure)
        yield TriggerEvent(event)
