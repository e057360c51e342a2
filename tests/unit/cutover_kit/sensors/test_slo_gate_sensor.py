"""The deferrable SLO gate: trigger serialization is exact, the operator defers at once with a
deferral timeout that is the plan's (or the one asked for), sensor arguments are refused instead
of ignored, and execute_complete refuses anything but an explicit success."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from cutover_kit.plan import load_plan
from cutover_kit.sensors.slo_gate import DEFERRAL_MARGIN, SLOGateOperator
from cutover_kit.triggers.slo_gate import SLOGateTrigger

PLAN = load_plan("rehearsal").to_dict()
RUN_ID = "manual__2026-12-07T19:00:00+00:00"


def make_gate(**overrides):
    arguments = dict(task_id="slo_gate", step_label="25 %", plan=PLAN, weights_set_at={"set_at": 1000.0, "percent": 25}, blue_baseline={"window": {"color": "blue", "requests": 10, "errors": 0, "latency_seconds": {"0.95": 0.01}, "up": True}})
    arguments.update(overrides)
    return SLOGateOperator(**arguments)


def test_trigger_serialize_is_exact_and_round_trips():
    trigger = SLOGateTrigger(step_label="25 %", plan=PLAN, bake_seconds=10, step_timeout_seconds=40, gate_started_at=1.0, weights_set_at=0.5, blue_baseline=None, haproxy_conn_id="haproxy_default", state_conn_id="redis_default",
                             dag_id="cutover", run_id=RUN_ID, green_percent=25.0, postgres_conn_id="postgres_default",
                             acknowledged_writes_file="/tmp/acknowledged.txt", data_since=0.25,
                             alertmanager_conn_id="alertmanager_default",
                             error_tracking_conn_id="error_tracking_default", run_started_at=0.1)
    classpath, kwargs = trigger.serialize()
    assert classpath == "cutover_kit.triggers.slo_gate.SLOGateTrigger"
    assert kwargs == {
        "step_label": "25 %",
        "plan": PLAN,
        "bake_seconds": 10,
        "step_timeout_seconds": 40,
        "gate_started_at": 1.0,
        "weights_set_at": 0.5,
        "blue_baseline": None,
        "prometheus_conn_id": "prometheus_default",
        "haproxy_conn_id": "haproxy_default",
        "state_conn_id": "redis_default",
        "dag_id": "cutover",
        "run_id": RUN_ID,
        "green_percent": 25.0,
        "postgres_conn_id": "postgres_default",
        "acknowledged_writes_file": "/tmp/acknowledged.txt",
        "data_since": 0.25,
        "alertmanager_conn_id": "alertmanager_default",
        "error_tracking_conn_id": "error_tracking_default",
        "run_started_at": 0.1,
    }
    assert SLOGateTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_gate_defers_immediately_with_the_plan_timings():
    from airflow.sdk.exceptions import TaskDeferred

    gate = make_gate()
    with pytest.raises(TaskDeferred) as deferred:
        gate.execute(context={"run_id": RUN_ID, "ti": FakeTI()})
    trigger = deferred.value.trigger
    assert isinstance(trigger, SLOGateTrigger)
    assert (trigger.bake_seconds, trigger.step_timeout_seconds) == (PLAN["bake_seconds"], PLAN["step_timeout_seconds"])
    assert trigger.weights_set_at == 1000.0 and trigger.blue_baseline["color"] == "blue"
    # set_weights' result without changing_at (older runs): the data window starts at set_at.
    assert trigger.data_since == 1000.0
    assert trigger.alertmanager_conn_id == "alertmanager_default"  # critical alerts judged when it resolves
    assert trigger.state_conn_id == "redis_default"  # every gate obeys the emergency stop
    # ... and names its run, so its heartbeat can be watched and a restarted trigger can resume it.
    assert (trigger.dag_id, trigger.run_id, trigger.green_percent) == ("cutover", RUN_ID, 25.0)
    assert abs(trigger.gate_started_at - time.time()) < 5
    # A lost triggerer still ends the step: the plan's step timeout plus the margin, then the task fails.
    assert deferred.value.timeout == timedelta(seconds=PLAN["step_timeout_seconds"]) + DEFERRAL_MARGIN


def test_an_explicit_deferral_timeout_is_the_one_the_gate_defers_with():
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        make_gate(deferral_timeout=timedelta(minutes=7)).execute(context={"run_id": RUN_ID, "ti": FakeTI()})
    assert deferred.value.timeout == timedelta(minutes=7)
    assert deferred.value.trigger.step_timeout_seconds == PLAN["step_timeout_seconds"]  # the gate's own rule is unchanged


def test_a_deferral_timeout_shorter_than_the_step_timeout_is_refused_before_deferring():
    """The task would otherwise die at the deferral timeout, without a verdict or the reflex rollback."""
    from airflow.sdk.exceptions import AirflowFailException

    too_short = timedelta(seconds=PLAN["step_timeout_seconds"] - 1)
    with pytest.raises(AirflowFailException, match="shorter than the step timeout"):
        make_gate(deferral_timeout=too_short).execute(context={"run_id": RUN_ID, "ti": FakeTI()})


def test_the_standby_watch_defers_for_its_own_longer_timeout():
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        make_gate(bake_seconds_field="standby_seconds").execute(context={"run_id": RUN_ID, "ti": FakeTI()})
    assert deferred.value.timeout == timedelta(seconds=deferred.value.trigger.step_timeout_seconds) + DEFERRAL_MARGIN
    assert deferred.value.trigger.step_timeout_seconds > PLAN["step_timeout_seconds"]


@pytest.mark.parametrize("argument", [{"mode": "poke"}, {"mode": "reschedule"}, {"timeout": 60}, {"poke_interval": 5}])
def test_sensor_arguments_are_refused_not_ignored(argument):
    name = next(iter(argument))
    with pytest.raises(TypeError, match=rf"slo_gate: {name} would be ignored: the SLO gate is an operator that defers .*deferral_timeout"):
        make_gate(**argument)


@pytest.mark.parametrize("bad", [timedelta(0), timedelta(seconds=-1), 60])
def test_a_deferral_timeout_must_be_a_positive_timedelta(bad):
    with pytest.raises(ValueError, match="deferral_timeout must be a positive timedelta"):
        make_gate(deferral_timeout=bad)


def test_standby_gate_bakes_for_the_standby_time():
    trigger = make_gate(bake_seconds_field="standby_seconds").build_trigger()
    assert trigger.bake_seconds == PLAN["standby_seconds"]
    assert trigger.step_timeout_seconds == PLAN["standby_seconds"] + PLAN["step_timeout_seconds"] - PLAN["bake_seconds"]


class FakeTI:
    dag_id = "cutover"

    def __init__(self, pulled=None):
        self.pushed = {}
        self.pulled = pulled or {}

    def xcom_pull(self, task_ids, key="return_value"):
        return self.pulled.get(task_ids)

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.mark.parametrize("status", ["failed", "inconclusive"])
def test_execute_complete_fails_without_retry_and_keeps_the_result(status):
    from airflow.sdk.exceptions import AirflowFailException

    ti = FakeTI()
    event = {"status": status, "line": f"Halt at 25 %: {status}"}
    with pytest.raises(AirflowFailException, match="Halt at 25 %"):
        make_gate().execute_complete({"ti": ti}, event)
    assert ti.pushed["gate_result"] == event


def test_execute_complete_returns_the_event_on_success():
    ti = FakeTI()
    event = {"status": "success", "line": "Promote past 25 %: ok"}
    assert make_gate().execute_complete({"ti": ti}, event) == event


def test_gate_pulls_plan_and_baseline_by_task_id():
    from airflow.sdk.exceptions import TaskDeferred

    baseline = {"verdict": "PASS", "window": {"color": "blue", "requests": 50, "errors": 0, "latency_seconds": {}, "up": True}}
    gate = SLOGateOperator(task_id="slo_gate", step_label="5 %", weights_set_at=1.0, plan_task_id="plan", baseline_task_id="baseline")
    with pytest.raises(TaskDeferred) as deferred:
        gate.execute({"run_id": RUN_ID, "ti": FakeTI({"plan": PLAN, "baseline": baseline})})
    assert deferred.value.trigger.plan == PLAN and deferred.value.trigger.blue_baseline["requests"] == 50


def test_gate_without_a_plan_fails_instead_of_judging_blind():
    from airflow.sdk.exceptions import AirflowFailException

    gate = SLOGateOperator(task_id="slo_gate", step_label="5 %", weights_set_at=1.0, plan_task_id="plan")
    with pytest.raises(AirflowFailException, match="no plan"):
        gate.execute({"run_id": RUN_ID, "ti": FakeTI()})


def test_the_gate_probes_the_shared_database_and_the_runs_ledger_by_default():
    trigger = make_gate(acknowledged_writes_file="/tmp/acknowledged.txt").build_trigger()
    assert (trigger.postgres_conn_id, trigger.acknowledged_writes_file) == ("postgres_default", "/tmp/acknowledged.txt")
    # The DAG renders an unset param to '': no ledger, so the probe checks agreement only.
    assert make_gate(acknowledged_writes_file="").build_trigger().acknowledged_writes_file is None
    assert make_gate(postgres_conn_id=None).build_trigger().postgres_conn_id is None


def test_the_gates_data_window_starts_before_the_weights_changed_not_after_the_read_back():
    """Green takes the step's writes from the moment the router is told: a row written between that
    instant and the read-back must be inside the probe's window, or a first bad write goes unseen."""
    from airflow.sdk.exceptions import TaskDeferred

    weights = {"changing_at": 999.6, "set_at": 1000.0, "percent": 25}
    with pytest.raises(TaskDeferred) as deferred:
        make_gate(weights_set_at=weights).execute(context={"run_id": RUN_ID, "ti": FakeTI()})
    trigger = deferred.value.trigger
    assert (trigger.data_since, trigger.weights_set_at) == (999.6, 1000.0)
    probe = trigger._integrity_probe()
    assert probe.since_epoch == 999.6
    # A bare weights time (a test or an older caller) keeps the old window: weights_set_at.
    bare = SLOGateTrigger(step_label="5 %", plan=PLAN, bake_seconds=10, step_timeout_seconds=40, gate_started_at=1.0,
                          weights_set_at=0.5, postgres_conn_id="postgres_default")
    assert bare._integrity_probe().since_epoch == 0.5


def test_gate_hands_the_tracker_and_the_run_start_to_its_trigger():
    from datetime import datetime, timezone

    from airflow.sdk.exceptions import TaskDeferred

    class DagRun:
        start_date = datetime(2026, 12, 8, 2, 0, tzinfo=timezone.utc)

    with pytest.raises(TaskDeferred) as deferred:
        make_gate(error_tracking_conn_id="error_tracking_default").execute(
            context={"run_id": RUN_ID, "ti": FakeTI(), "dag_run": DagRun()})
    trigger = deferred.value.trigger
    assert trigger.error_tracking_conn_id == "error_tracking_default"
    assert trigger.run_started_at == DagRun.start_date.timestamp()
    with pytest.raises(TaskDeferred) as untracked:
        make_gate().execute(context={"run_id": RUN_ID, "ti": FakeTI()})
    assert untracked.value.trigger.error_tracking_conn_id is None  # not asked unless wired
