"""The tasks around a go/no-go approval: the branch after it (stages/traffic_migration.py, and
stage 13's wrapper) and its halt in the rollback group (stages/rollback.py). Airflow's context and
the emergency-stop read are fakes; the rules themselves are in tests/unit/cutover_kit/test_approvals.py."""

from __future__ import annotations

from typing import Any

import pytest

from cutover_kit.approvals import APPROVAL_XCOM_KEY
from cutover_kit.control import EmergencyStop
from cutover_kit.stages import full_cutover, rollback, traffic_migration

APPROVE = "stage_10_traffic_migration.step_50.approve"


class FakeTI:
    def __init__(self, record: dict | None) -> None:
        self.record = record

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        assert (task_ids, key) == (APPROVE, APPROVAL_XCOM_KEY)
        return self.record


@pytest.fixture
def world(monkeypatch):
    import airflow.sdk

    state = {"ti": FakeTI(None), "stop": None}
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"ti": state["ti"]})
    monkeypatch.setattr(rollback, "latched_stop_or_none", lambda: state["stop"])
    return state


@pytest.mark.parametrize("module", [traffic_migration, full_cutover])
@pytest.mark.parametrize(("record", "chosen"), [
    ({"outcome": "approved", "proceeds": True, "line": "Proceed to 50 %: approved by alice"}, "next"),
    ({"outcome": "rejected", "proceeds": False, "line": "Roll back at 25 %: 50 % Reject by bob"}, "halt"),
    (None, "halt"),
])
def test_the_branch_goes_on_only_after_an_approval(world, module, record, chosen):
    world["ti"] = FakeTI(record)
    assert module.decide_after_approval(APPROVE, "next", "halt") == chosen


def test_the_halt_carries_the_approval_s_line_and_the_watch_s_rollback_facts(world):
    record = {"outcome": "watch_halted", "line": "Halt at 25 % (awaiting approval of 50 %): green 5xx 3 %",
              "decided_at": 1000.0, "watch": {"flags_restored_at": 1000.1, "traffic_restored_at": 1000.2}}
    world["ti"] = FakeTI(record)
    halt = rollback.record_approval_halt("50 %", APPROVE)
    assert halt["verdict"] == "FAIL" and halt["reason"] == record["line"] and halt["approval"] == record
    assert (halt["decided_at"], halt["flags_restored_at"], halt["traffic_restored_at"]) == (1000.0, 1000.1, 1000.2)


def test_an_emergency_stop_outranks_the_approval_s_reason(world):
    world["ti"] = FakeTI({"outcome": "rejected", "line": "Roll back at 25 %: 50 % Reject by bob", "decided_at": 5.0})
    world["stop"] = EmergencyStop("green corrupts invoices", "carol", 4.0, "manual__1")
    halt = rollback.record_approval_halt("50 %", APPROVE)
    assert "emergency rollback by carol" in halt["reason"] and halt["decided_at"] == 4.0


def test_no_record_still_halts_saying_why(world):
    halt = rollback.record_approval_halt("50 %", APPROVE)
    assert halt["reason"] == "Halt before 50 %: the approval did not report (it or a task before it failed)"
