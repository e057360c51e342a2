"""The run record built from what a cutover run leaves in XCom: gate decisions, weights, drill,
rollback timings, data validation and the outcome, from hand-made task facts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cutover_kit.report.collect import TaskFacts, build_run_record, describe_stop, stage_block
from cutover_kit.report.record import RunRecord, Series

from tests.unit.cutover_kit.report.records import HALT_LINE, T0, promoted_record, rolled_back_facts, rolled_back_record


def test_a_rolled_back_run_is_recorded_with_its_halt_and_timings():
    record = rolled_back_record()
    # cutover_verdict failed without XCom: the same rule it applies gives the outcome.
    assert record.outcome == "rolled_back" and record.outcome_reason == f"Rolled back: {HALT_LINE}"
    assert [(g.step, g.status) for g in record.gates] == [("5 %", "success"), ("25 %", "failed")]
    halted = record.gates[1]
    assert halted.line == HALT_LINE and halted.polls == 4
    assert halted.detection_seconds == pytest.approx(17.5)  # weights at +80, decision at +97.5
    assert halted.started_at == pytest.approx(T0 + 83)
    rollback = record.rollback
    assert rollback.step == "25 %" and rollback.verified is True
    assert rollback.flags_seconds == pytest.approx(0.06) and rollback.traffic_seconds == pytest.approx(0.09)  # the reflex
    assert record.drill.rollback_seconds == 0.0041
    assert record.data_validation.expectations == 34 and record.data_validation.failed == 0
    assert record.plan["name"] == "rehearsal"


def test_the_weights_timeline_holds_every_change_in_order():
    weights = rolled_back_record().weights
    assert [(w.at - T0, w.green_percent) for w in weights] == [
        (10, 5), (80, 25), (pytest.approx(97.59), 0), (pytest.approx(102.5), 0)]
    assert "gate reflex rollback" in weights[2].source


def test_a_promoted_run_keeps_the_verdicts_own_words_and_has_no_rollback():
    record = promoted_record()
    assert record.outcome == "promoted" and record.rollback is None
    assert record.gates[-1].step == "100 % standby" and record.gates[-1].weights_set_at is None


def test_without_the_rollback_task_the_route_back_time_counts():
    facts = [f if f.task_id != "rollback.halt_at_25" else
             TaskFacts(f.task_id, f.state, {**f.return_value, "traffic_restored_at": None, "flags_restored_at": None})
             for f in rolled_back_facts()]
    rollback = build_run_record(dag_id="cutover", run_id="r", started_at=T0, ended_at=T0 + 1, tasks=facts).rollback
    assert rollback.traffic_seconds == pytest.approx(5) and rollback.flags_seconds == pytest.approx(3)


def test_a_run_without_a_verdict_yet_says_so():
    facts = [f for f in rolled_back_facts() if f.task_id != "cutover_verdict"]
    record = build_run_record(dag_id="cutover", run_id="r", started_at=None, ended_at=None, tasks=facts)
    assert record.outcome is None and "no verdict" in record.outcome_reason


def test_a_failed_validation_without_summary_is_an_error_not_zeros():
    facts = [TaskFacts("stage_02_database_preparation.validate_with_great_expectations", "failed",
                       validation_failure={"reason": "GX validation failed: 2 of 34 expectations: orders: amount"})]
    validation = build_run_record(dag_id="cutover", run_id="r", started_at=None, ended_at=None, tasks=facts).data_validation
    assert validation.expectations is None and "2 of 34" in validation.error


def test_stage_6_and_7_blocks_only_when_a_stage_recorded_them():
    assert stage_block(rolled_back_facts(), "stage_06_", ("blue", "green", "verdict", "reason")) is None
    load = {"blue": {"knee_rps": 90}, "green": {"knee_rps": 80}, "verdict": "pass", "reason": "Capacity ok"}
    facts = [TaskFacts("stage_06_load_testing.judge_capacity", "success", load)]
    assert stage_block(facts, "stage_06_", ("blue", "green", "verdict", "reason")) == load


def test_an_emergency_stop_is_described_by_who_and_why():
    stop = json.dumps({"requested_by": "alice", "reason": "green corrupts invoices", "requested_at": 1.0})
    assert describe_stop(stop) == "by alice: green corrupts invoices"
    assert describe_stop(None) is None


def test_the_record_round_trips_through_json():
    record = rolled_back_record()
    again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record


def test_a_series_refuses_an_unknown_measure_or_color():
    with pytest.raises(ValueError, match="measure"):
        Series("p42", "green", ())
    with pytest.raises(ValueError, match="color"):
        Series("p95", "purple", ())


def test_timings_read_in_ms_under_a_second():
    from cutover_kit.report.record import format_duration

    assert format_duration(0.00041) == "0.4 ms" and format_duration(2.5) == "2.500 s" and format_duration(None) == "not recorded"


def test_compliance_covers_every_step_also_one_halted_before_its_gate():
    from cutover_kit.report.compliance import compliance_by_step, step_intervals

    record = rolled_back_record()
    assert [(label, start - T0, None if end is None else end - T0) for label, start, end in step_intervals(record)] == [
        ("5 %", 10, 80), ("25 %", 80, pytest.approx(97.59))]
    rows = {row.step: row for row in compliance_by_step(record)}
    assert rows["5 %"].green_percent == 100 and rows["5 %"].gate_status == "success"
    assert rows["25 %"].gate_status == "failed" and rows["25 %"].green_percent < 100  # green's 20 % 5xx at +85..+90
    no_gate = dataclasses.replace(record, gates=record.gates[:1])
    assert {row.step: row.gate_status for row in compliance_by_step(no_gate)}["25 %"] == "halted before its gate decided"
