"""The integrity probe's pure judge: which violation names the reason, and what an intact line says."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cutover_kit.integrity import (
    AGREEMENT, DISAGREEMENT_SAMPLE, Disagreement, IntegritySnapshot, acknowledged_since, data_window_start,
    integrity_halt_line, judge_integrity,
)

ROWS = {"orders": 30, "line_items": 60, "users": 3}


def snapshot(**fields):
    return IntegritySnapshot(watermarks={"orders": 100, "line_items": 200, "users": 10}, rows_checked=ROWS, **fields)


def test_intact_with_a_ledger_says_both_checks_passed():
    judgement = judge_integrity(snapshot(acknowledged=25, seconds=0.0042))
    assert judgement.intact
    assert judgement.reason == ("data intact (4 ms probe): 93 rows since the step began, old and new columns agree; "
                                "25 acknowledged writes since the step began, all present")


def test_without_a_ledger_the_reason_says_agreement_only():
    judgement = judge_integrity(snapshot(acknowledged=None))
    assert judgement.intact and judgement.reason.endswith("no acknowledged-writes ledger configured, so agreement only")


def test_legacy_shape_only_says_there_was_nothing_to_compare():
    assert "legacy shape only" in judge_integrity(snapshot(acknowledged=0, expanded=False)).reason


def test_a_disagreeing_amount_names_table_row_and_both_columns():
    row = Disagreement("orders", 4711, {"amount_cents": 1999, "amount": Decimal("29.99"), "status": "paid", "status_v2": "paid"})
    judgement = judge_integrity(snapshot(disagreements=[row], acknowledged=3))
    assert not judgement.intact
    assert judgement.reason == ("data: orders id 4711 amount_cents 1999 != amount 29.99 "
                                "(old vs new column; 1 such orders rows since the step began)")
    assert integrity_halt_line("25 %", judgement) == f"Halt at 25 %: {judgement.reason} (a data violation halts at once)"


def test_the_column_named_is_the_one_that_disagrees():
    row = Disagreement("orders", 9, {"amount_cents": 1999, "amount": Decimal("19.99"), "status": "paid", "status_v2": None})
    assert "orders id 9 status paid != status_v2 NULL" in judge_integrity(snapshot(disagreements=[row])).reason
    user = Disagreement("users", 4, {"email": " A@x.org", "email_normalized": "b@x.org"})
    assert "users id 4 email  A@x.org != email_normalized b@x.org" in judge_integrity(snapshot(disagreements=[user])).reason


def test_the_first_table_and_lowest_id_name_the_reason_and_a_full_sample_reads_at_least():
    rows = [Disagreement("line_items", 7, {"unit_price_cents": 100, "unit_price": Decimal("2.00")})]
    rows += [Disagreement("orders", 50 - i, {"amount_cents": 100, "amount": Decimal("9.00"), "status": "paid", "status_v2": "paid"})
             for i in range(DISAGREEMENT_SAMPLE)]
    reason = judge_integrity(snapshot(disagreements=rows)).reason
    assert reason.startswith(f"data: orders id {50 - DISAGREEMENT_SAMPLE + 1} amount_cents 100 != amount 9.00")
    assert f">= {DISAGREEMENT_SAMPLE} such orders rows" in reason


def test_a_lost_write_comes_before_a_corrupted_one():
    row = Disagreement("orders", 4711, {"amount_cents": 1, "amount": Decimal("2.00"), "status": "paid", "status_v2": "paid"})
    judgement = judge_integrity(snapshot(disagreements=[row], acknowledged=40, missing=[4730, 4712, 4713]))
    assert not judgement.intact
    assert judgement.reason == ("data: orders id 4712 acknowledged to a client but not in the database (3 of 40 "
                                "acknowledged writes since the step began missing, 2 more: [4713, 4730])")


def test_acknowledged_since_keeps_only_the_steps_writes():
    assert acknowledged_since([3, 100, 101, 250], 100) == [101, 250]


def test_every_agreement_predicate_names_both_columns_of_its_pair():
    for pairs in AGREEMENT.values():
        for pair in pairs:
            assert pair.old in pair.disagree_sql and pair.new in pair.disagree_sql


def test_the_data_window_starts_before_the_weights_changed_else_at_the_read_back():
    # changing_at: green may take the step's writes from then on, before the read-back returns.
    assert data_window_start({"changing_at": 999.5, "set_at": 1000.0, "percent": 25}) == 999.5
    assert data_window_start({"set_at": 1000.0, "percent": 25}) == 1000.0  # a result from before changing_at


@pytest.mark.parametrize("weights", [{"percent": 25}, {"set_at": None}, {"set_at": 0}, {"set_at": True}, {"set_at": "1000"}])
def test_a_weights_result_without_a_time_is_refused_rather_than_probing_an_unbounded_window(weights):
    with pytest.raises(ValueError, match="no changing_at or set_at time"):
        data_window_start(weights)
