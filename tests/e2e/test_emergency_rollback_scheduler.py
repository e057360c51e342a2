"""The big red button under a real scheduler: `emergency_rollback` triggered over REST while a
`cutover` run sits in a traffic step's gate. The cutover must stop advancing, end rolled back
with the operator's reason, and refuse to start again until the stop is acknowledged.

`airflow standalone` (scheduler, triggerer, DAG processor, API server) on a private home and port,
the sandbox on the e2e ports, traffic through the router all along.
"""

from __future__ import annotations

import os

import pytest

from sandbox.airflow_stack import sandbox_under_airflow
from sandbox.config import GREEN_REQUIRED_SCHEMA
from sandbox.launcher import Sandbox

pytestmark = pytest.mark.timeout(900)

REASON = "support reports double charges on green checkout"
GATE_5 = "stage_10_traffic_migration.step_5.slo_gate"


def schema_version(box: Sandbox) -> str:
    import psycopg2

    from cutover_kit.db.migrations import current_version

    with psycopg2.connect(box.dsn()) as conn:
        return current_version(conn)


def green_percent(box: Sandbox) -> float:
    from cutover_kit.routing.haproxy_runtime import HAProxyRuntimeRouter

    extra = box.connections()["haproxy_default"]["extra"]
    router = HAProxyRuntimeRouter(backend=extra["backend"], socket_path=extra["socket_path"])
    return router.read_weights().green_percent


@pytest.fixture(scope="module")
def stack():
    offset = int(os.environ.get("SANDBOX_E2E_PORT_OFFSET", "2000"))
    # Only `cutover` is unpaused by hand: emergency_rollback, smoke and gate_watchdog must be active on their own.
    # Traffic for the whole module (about 12-15 min under load: the emergency test alone bakes
    # 240 s, then a full promotion needs live traffic at every gate); stopped at teardown anyway.
    with sandbox_under_airflow("cutover-e2e-sched-", offset, ("cutover",),
                               traffic_rps=30, traffic_seconds=1800, seed=11) as (airflow, box):
        yield airflow, box


def test_red_button_and_watchdog_are_active_on_a_fresh_stack(stack):
    """Measured on a fresh `make airflow`: emergency_rollback started paused and a run triggered
    with a reason sat queued for 60 s. Nobody touches a toggle here."""
    airflow, _ = stack
    for dag_id in ("emergency_rollback", "smoke", "gate_watchdog"):
        airflow.wait_for_dag(dag_id)
        reply = airflow.api("GET", f"/dags/{dag_id}")
        assert reply.json()["is_paused"] is False, (dag_id, reply.json())


def test_emergency_rollback_needs_a_reason(stack):
    airflow, _ = stack
    refused = airflow.trigger("emergency_rollback", {})
    assert refused.status_code == 400, refused.text
    blank = airflow.trigger("emergency_rollback", {"reason": "   "})
    assert blank.status_code == 400, blank.text


def test_emergency_rollback_mid_cutover_stops_it_and_it_stays_stopped(stack):
    airflow, box = stack
    # Long bake: the run must still be inside step 5's gate when the operator presses the button.
    started = airflow.trigger("cutover", {"plan": "rehearsal", "bake_seconds": 240, "step_timeout_seconds": 300})
    assert started.status_code == 200, started.text
    cutover_run = started.json()["dag_run_id"]
    airflow.wait_until(lambda: airflow.task_states("cutover", cutover_run).get(GATE_5) == "deferred", 420,
                       "the 5 % gate to be deferred")
    assert green_percent(box) > 0

    pressed = airflow.trigger("emergency_rollback", {"reason": REASON})
    assert pressed.status_code == 200, pressed.text
    emergency_run = pressed.json()["dag_run_id"]
    emergency = airflow.wait_for_run("emergency_rollback", emergency_run, timeout=180)
    assert emergency["state"] == "success", airflow.task_states("emergency_rollback", emergency_run)
    report = airflow.xcom("emergency_rollback", emergency_run, "report")
    assert report["traffic_verified_seconds"] < 60, report  # the brief's budget; BENCHMARKS.md has the figures
    assert green_percent(box) == 0
    flags = airflow.xcom("emergency_rollback", emergency_run, "flags_to_rails")
    assert flags["verdict"] == "PASS" and flags["flags"]["green.feature.orders"] is False, flags

    cutover = airflow.wait_for_run("cutover", cutover_run, timeout=240)
    states = airflow.task_states("cutover", cutover_run)
    assert cutover["state"] == "failed"
    assert states[GATE_5] == "failed" and states["rollback.halt_at_5"] == "success", states
    assert states["stage_10_traffic_migration.step_25.set_weights"] in (None, "skipped"), states  # never advanced
    assert states["stage_13_full_cutover.promote"] in (None, "skipped"), states
    halt = airflow.xcom("cutover", cutover_run, "rollback.halt_at_5")
    assert halt["reason"].startswith("Halt at 5 %: emergency rollback by admin") and REASON in halt["reason"], halt
    verdict_log = airflow.task_log("cutover", cutover_run, "cutover_verdict")
    assert "Outcome rolled_back: Rolled back: Halt at 5 %: emergency rollback by admin" in verdict_log, verdict_log[-2000:]

    # Latched: a new cutover refuses to start until an operator acknowledges the stop.
    again = airflow.trigger("cutover", {"plan": "rehearsal"})
    assert again.status_code == 200, again.text
    again_run = again.json()["dag_run_id"]
    refused = airflow.wait_for_run("cutover", again_run, timeout=300)
    again_states = airflow.task_states("cutover", again_run)
    assert refused["state"] == "failed"
    assert again_states["stage_01_deployment_readiness.check_emergency_stop"] == "failed", again_states
    assert again_states["stage_02_database_preparation.check_schema_version"] in (None, "upstream_failed"), again_states
    log = airflow.task_log("cutover", again_run, "stage_01_deployment_readiness.check_emergency_stop")
    assert "Cutover refused: emergency rollback by admin" in log and "acknowledge_emergency_stop=true" in log
    assert green_percent(box) == 0
    # Refused before it changed anything: the database is left alone (no down migration of an
    # expand this run never applied; green keeps the columns it needs).
    assert again_states["database_rollback.down_migration_verified"] in (None, "skipped"), again_states
    decided = airflow.task_log("cutover", again_run, "decide_after_validation")
    assert "Halt, database left as it was" in decided, decided[-2000:]
    assert schema_version(box) == GREEN_REQUIRED_SCHEMA


def flags_green_serves(box: Sandbox) -> dict[str, bool]:
    """The feature flags as the flag store holds them now (file backend: the flagd file)."""
    from cutover_kit.flags.flagd_file import FlagdFileStore

    return FlagdFileStore(box.connections()["flagd_default"]["extra"]["path"]).read().as_flags()


def test_a_second_run_never_undoes_a_finished_cutover(stack):
    """Measured under `make airflow`: run 1 promoted, run 2 triggered right after failed its drill
    and left production back on Rails. Now stage 1 refuses run 2 before any change."""
    airflow, box = stack
    # The previous test left an emergency stop latched: acknowledge it and promote for real.
    first = airflow.trigger("cutover", {"plan": "rehearsal", "acknowledge_emergency_stop": True})
    assert first.status_code == 200, first.text
    first_run = first.json()["dag_run_id"]
    promoted = airflow.wait_for_run("cutover", first_run, timeout=600)
    first_states = airflow.task_states("cutover", first_run)
    assert promoted["state"] == "success", {task: state for task, state in first_states.items()
                                            if state not in ("success", "skipped")}
    assert green_percent(box) == 100
    flags_after_promotion = flags_green_serves(box)
    assert flags_after_promotion["green.feature.orders"] is True, flags_after_promotion

    again = airflow.trigger("cutover", {"plan": "rehearsal"})
    assert again.status_code == 200, again.text
    again_run = again.json()["dag_run_id"]
    refused = airflow.wait_for_run("cutover", again_run, timeout=300)
    states = airflow.task_states("cutover", again_run)
    assert refused["state"] == "failed"
    assert states["stage_01_deployment_readiness.check_previous_cutover"] == "failed", states
    log = airflow.task_log("cutover", again_run, "stage_01_deployment_readiness.check_previous_cutover")
    assert "Cutover refused: the router already sends 100 % of traffic to green" in log, log[-2000:]
    assert "the last cutover promoted" in log and "allow_rerun_reason" in log, log[-2000:]
    # Nothing changed: no task after stage 1 ran, traffic and flags are where run 1 left them.
    ran = sorted(task for task, state in states.items()
                 if state not in (None, "skipped", "upstream_failed") and not task.startswith("stage_01_")
                 and task not in ("decide_after_validation", "verify_data_integrity", "cutover_verdict"))
    assert ran == [], states
    assert green_percent(box) == 100
    assert flags_green_serves(box) == flags_after_promotion
