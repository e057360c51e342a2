"""The tasks around the previous-cutover judge: stage 1 refuses before any change, stage 8 starts
over only when stage 1 said so, and every run that changed traffic records its outcome (best effort).
Fakes stand in for the router, Redis and Airflow's context; the judge itself is in test_previous_cutover."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.control import CutoverStateError
from cutover_kit.previous_cutover import PROMOTED, ROLLED_BACK, RecordedOutcome
from cutover_kit.routing import RouterWeights, weights_for_green_percent
from cutover_kit.stages import deployment_readiness, emergency_rollback, full_cutover, rollback, rollback_procedures

PLAN_TASK = "stage_01.validate_plan"

class FakeRouter:
    def __init__(self, green_percent: int | None, calls: list[str]) -> None:
        self.weights = None if green_percent is None else weights_for_green_percent(green_percent)
        self.calls = calls

    def __call__(self, conn_id: str = "haproxy_default") -> FakeRouter:  # stands in for the HAProxyHook class
        return self

    def describe(self) -> str:
        return "fake HAProxy"

    def read_weights(self) -> RouterWeights:
        if self.weights is None:
            raise ConnectionRefusedError("runtime API socket refused")
        return self.weights

    def set_green_percent(self, percent: int) -> RouterWeights:
        self.calls.append(f"green {percent}")
        self.weights = weights_for_green_percent(percent)
        return self.weights


class FakeState:
    def __init__(self, last: RecordedOutcome | None = None, broken: bool = False) -> None:
        self.last, self.broken, self.recorded = last, broken, []

    def __call__(self) -> FakeState:  # stands in for the CutoverStateHook class
        return self

    def last_outcome(self) -> RecordedOutcome | None:
        if self.broken:
            raise CutoverStateError("cutover state (redis_default) unavailable while reading the last outcome")
        return self.last

    def record_outcome(self, outcome: RecordedOutcome) -> None:
        if self.broken:
            raise CutoverStateError("cutover state (redis_default) unavailable while recording the outcome")
        self.recorded.append(outcome)


class FakeTI:
    dag_id = "cutover"
    run_id = "manual__2"

    def __init__(self, xcoms: dict[str, Any] | None = None, states: dict[str, str] | None = None) -> None:
        self.xcoms, self.states = xcoms or {}, states or {}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.xcoms.get(task_ids)

    def get_task_states(self, dag_id: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
        return {self.run_id: self.states}


@pytest.fixture
def world(monkeypatch):
    calls: list[str] = []
    world = SimpleNamespace(calls=calls, router=FakeRouter(100, calls), state=FakeState(), ti=FakeTI(), params={})
    monkeypatch.setattr("cutover_kit.hooks.haproxy.HAProxyHook", world.router)
    world.ti.xcoms[PLAN_TASK] = _drill_plan()  # router: haproxy (the default)
    monkeypatch.setattr("cutover_kit.hooks.cutover_state.CutoverStateHook", lambda: world.state)
    monkeypatch.setattr("airflow.sdk.get_current_context",
                        lambda: {"params": world.params, "ti": world.ti, "run_id": world.ti.run_id})
    for module in (rollback_procedures, full_cutover):
        monkeypatch.setattr(module, "ensure_not_stopped", lambda action: None)
    return world


def promoted() -> RecordedOutcome:
    return RecordedOutcome(PROMOTED, "manual__1", "cutover", 1_764_583_200.0, "Promoted: 100 % green")


def test_stage_1_refuses_a_second_run_after_a_promotion_and_changes_nothing(world):
    world.state.last = promoted()
    with pytest.raises(AirflowFailException, match="Cutover refused: the router already sends 100 % of traffic "
                                                   "to green .* the last cutover promoted .*allow_rerun_reason"):
        deployment_readiness.check_previous_cutover(PLAN_TASK)
    assert world.calls == [] and world.state.recorded == []


@pytest.mark.parametrize("broken", ["router", "state"])
def test_stage_1_refuses_for_now_when_it_cannot_tell(world, broken):
    world.router.weights = None if broken == "router" else weights_for_green_percent(0)
    world.state.broken = broken == "state"
    with pytest.raises(AirflowException, match="cannot tell whether a cutover is in place: ") as raised:
        deployment_readiness.check_previous_cutover(PLAN_TASK)
    assert not isinstance(raised.value, AirflowFailException)  # unknown may clear up: retried
    assert world.calls == []


def test_stage_1_allows_a_fresh_start_and_a_rerun_on_purpose(world, caplog):
    world.router.weights = weights_for_green_percent(0)
    assert deployment_readiness.check_previous_cutover(PLAN_TASK)["starts_over"] is False
    world.router.weights, world.state.last = weights_for_green_percent(100), promoted()
    world.params["allow_rerun_reason"] = "redo after the payments fix"
    with caplog.at_level(logging.INFO):
        result = deployment_readiness.check_previous_cutover(PLAN_TASK)
    assert result["starts_over"] is True and "Reason given: redo after the payments fix" in result["reason"]
    assert result["reason"] in caplog.text and world.calls == []


def test_stage_1_refuses_a_blank_rerun_reason(world):
    world.params["allow_rerun_reason"] = "  "
    with pytest.raises(AirflowFailException, match="allow_rerun_reason unusable"):
        deployment_readiness.check_previous_cutover(PLAN_TASK)


def test_the_drill_starts_over_from_the_current_share_only_when_stage_1_said_so(world):
    world.ti.xcoms["stage_01.check_previous_cutover"] = {"verdict": "PASS", "starts_over": False}
    with pytest.raises(AirflowFailException, match="Rollback drill refused: green already has 100 %"):
        rollback_procedures.rollback_drill(_drill_plan(), "stage_01.check_previous_cutover")
    assert world.calls == []
    world.ti.xcoms["stage_01.check_previous_cutover"]["starts_over"] = True
    result = rollback_procedures.rollback_drill(_drill_plan(), "stage_01.check_previous_cutover")
    assert world.calls == ["green 0"]
    assert "re-run on purpose: green 100 % -> 0 %" in result["reason"] and "verified by read-back" in result["reason"]


def test_the_ordinary_drill_is_unchanged(world):
    world.router.weights = weights_for_green_percent(0)
    result = rollback_procedures.rollback_drill(_drill_plan(), "stage_01.check_previous_cutover")
    assert world.calls == ["green 1", "green 0"] and "1 % -> 0 % green" in result["reason"]


def _drill_plan() -> dict[str, Any]:
    from cutover_kit.plan import load_plan

    return load_plan("rehearsal").to_dict()


def test_promote_records_promoted_and_a_redis_failure_does_not_fail_it(world, caplog):
    result = full_cutover.record_promotion(_drill_plan())
    assert result["outcome_recorded"] is True
    assert [(o.outcome, o.run_id, o.dag_id) for o in world.state.recorded] == [(PROMOTED, "manual__2", "cutover")]
    world.state.broken = True
    with caplog.at_level(logging.ERROR):
        assert full_cutover.record_promotion(_drill_plan())["outcome_recorded"] is False
    assert "Outcome promoted NOT recorded" in caplog.text


def test_a_verified_rollback_records_rolled_back_with_the_halt_reason(world, monkeypatch):
    monkeypatch.setattr(rollback, "check_blue_serving_alone", lambda probes=10: {"verdict": "PASS", "reason": "10/10 blue"})
    world.ti.states = {"rollback.halt_at_25": "success", "rollback.halt_at_5": "skipped"}
    world.ti.xcoms["rollback.halt_at_25"] = {"reason": "Halt at 25 %: green 5xx ratio 0.2"}
    assert rollback.verify_blue_serving()["outcome_recorded"] is True
    (recorded,) = world.state.recorded
    assert recorded.outcome == ROLLED_BACK and recorded.reason == "Halt at 25 %: green 5xx ratio 0.2; 10/10 blue"
    world.state.broken = True
    assert rollback.verify_blue_serving()["outcome_recorded"] is False  # logged, the rollback still verified


def test_the_emergency_report_records_rolled_back_once_traffic_is_verified(world):
    world.ti = FakeTI(
        xcoms={"latch": {"latched": True, "reason": "double charges", "triggered_at": 100.0},
               "traffic": {"verified_at": 101.0}},
        states={"traffic": "success", "flags": "failed"},
    )
    world.ti.dag_id = "emergency_rollback"
    with pytest.raises(AirflowFailException, match="INCOMPLETE"):
        emergency_rollback.report_emergency_rollback("latch", {"flags": "flags", "traffic": "traffic"})
    (recorded,) = world.state.recorded
    assert (recorded.outcome, recorded.dag_id, recorded.reason) == (ROLLED_BACK, "emergency_rollback",
                                                                     "emergency rollback: double charges")


@pytest.mark.parametrize("restore_state, drops", [("upstream_failed", False), (None, False), ("success", True),
                                                  ("failed", True)])
def test_a_refused_run_does_not_even_drop_the_validation_scratch(world, monkeypatch, restore_state, drops):
    """Stage 2's cleanup runs ALL_DONE; after a stage 1 refusal its restore never started, so it skips."""
    from airflow.sdk.exceptions import AirflowSkipException

    from cutover_kit.stages import database_preparation

    dropped = []
    monkeypatch.setattr("cutover_kit.db.restore.drop_scratch", lambda dsn, name: dropped.append(name))
    monkeypatch.setattr(database_preparation, "connection_dsn", lambda conn_id: "dbname=x")
    restore = "stage_02_database_preparation.restore_backup_for_validation"
    world.ti.states = {restore: restore_state} if restore_state else {}
    if drops:
        database_preparation.drop_backup_scratch(scratch_db="gx_scratch", restore_task_id=restore)
    else:
        with pytest.raises(AirflowSkipException, match=f"Nothing to drop: {restore} never ran"):
            database_preparation.drop_backup_scratch(scratch_db="gx_scratch", restore_task_id=restore)
    assert dropped == (["gx_scratch"] if drops else [])
