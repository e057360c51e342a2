"""The cutover's one-line notices (pure): texts, the Slack-compatible payload with its machine block,
idempotency keys, and which task of a stage announces its start and end."""

from __future__ import annotations

import json

import pytest

from cutover_kit.cutover_notices import (
    KINDS,
    LINE_LIMIT,
    CutoverNotice,
    announces_stage_start,
    database_rollback_text,
    deadline_missed_text,
    emergency_latched_text,
    emergency_report_text,
    format_duration,
    gate_decision_text,
    notice_payload,
    one_line,
    rollback_seconds,
    rollback_text,
    stage_end_summary,
    stage_failed_text,
    stage_started_text,
    verdict_text,
)

RUN = "manual__2026-12-08T02:30:00+00:00"


def notice(**fields):
    base = {"kind": "gate_decision", "text": "Halt at 25 %: green 5xx 3.2 % > 1.0 %", "dag_id": "cutover", "run_id": RUN,
            "step": "25 %", "task_id": "stage_10_traffic_migration.step_25.slo_gate", "try_number": 1, "at": 1765161000.5}
    return CutoverNotice(**(base | fields))


# ------------------------------------------------------------------------------------ notice and payload


def test_line_carries_run_task_and_try_so_a_retry_is_recognisable():
    first, retry = notice(), notice(try_number=2)
    assert first.line == ("Halt at 25 %: green 5xx 3.2 % > 1.0 % [cutover, run " + RUN
                          + ", stage_10_traffic_migration.step_25.slo_gate try 1]")
    assert first.key == f"cutover/{RUN}/gate_decision/25 %/stage_10_traffic_migration.step_25.slo_gate/try1"
    assert retry.key != first.key and retry.key.removesuffix("try2") == first.key.removesuffix("try1")
    assert notice(at=1.0).key == first.key  # the same event posted twice has one key: a receiver can drop it


def test_payload_is_slack_compatible_plus_a_machine_block():
    payload = notice_payload(notice())
    assert payload["text"] == notice().line
    assert payload["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": notice().line}}]
    assert payload["cutover"] == {"kind": "gate_decision", "dag_id": "cutover", "run_id": RUN, "step": "25 %",
                                  "task_id": "stage_10_traffic_migration.step_25.slo_gate", "try_number": 1,
                                  "at": 1765161000.5, "key": notice().key, "text": "Halt at 25 %: green 5xx 3.2 % > 1.0 %"}
    json.dumps(payload)


def test_unknown_kind_is_refused_naming_the_vocabulary():
    with pytest.raises(ValueError, match="notice kind 'stage_paused' is not one of stage_started"):
        notice(kind="stage_paused")
    assert len(KINDS) == len(set(KINDS)) == 8


def test_one_line_flattens_and_bounds_text():
    assert one_line("a\n  b\tc ") == "a b c"
    long = one_line("x" * 2000)
    assert len(long) == LINE_LIMIT and long.endswith("…")


# ------------------------------------------------------------------------------------ stages


ROOTS = ["stage_05.blue_health", "stage_05.green_health", "stage_05.postgres", "stage_05.redis"]


def test_the_first_root_to_start_announces_the_stage_and_the_others_stay_quiet():
    assert announces_stage_start("stage_05.postgres", ROOTS, [])  # first to start: nobody announced yet
    assert not announces_stage_start("stage_05.blue_health", ROOTS, ["stage_05.postgres"])
    assert not announces_stage_start("stage_05.redis", ROOTS, ["stage_05.postgres", "stage_05.blue_health"])
    # Its own marker (a retry sees none: XComs go with the try) does not silence a task.
    assert announces_stage_start("stage_05.postgres", ROOTS, ["stage_05.postgres"])
    assert not announces_stage_start("elsewhere.task", ROOTS, [])


def test_stage_ends_when_every_last_task_has_finished():
    leaves = ["s.decide_standby", "s.promote"]
    assert stage_end_summary(leaves, {"s.decide_standby": "success", "s.promote": "running"}) is None
    assert stage_end_summary(leaves, {"s.decide_standby": "success"}) is None  # promote not even scheduled
    assert stage_end_summary(leaves, {"s.decide_standby": "success", "s.promote": "success"}) == "2 tasks succeeded"
    assert stage_end_summary(["s.judge"], {"s.judge": "success"}) == "1 task succeeded"
    mixed = {"s.a": "success", "s.b": "success", "s.c": "skipped", "s.d": "upstream_failed", "s.judge": "success"}
    assert stage_end_summary(["s.judge"], mixed) == "3 succeeded, 1 skipped, 1 upstream failed"
    assert stage_end_summary([], {}) is None


def test_stage_texts():
    assert stage_started_text("stage_05_health_checks", "stage_05_health_checks.blue_health") == \
        "stage_05_health_checks started (blue_health)"
    assert stage_failed_text("stage_02_database_preparation", "stage_02_database_preparation.backup_and_verify",
                             "pg_dump failed:\nconnection refused", 3, 3) == \
        "stage_02_database_preparation FAILED at backup_and_verify after 3 of 3 tries: pg_dump failed: connection refused"
    assert stage_failed_text("s", "s.t", "", 1, 1) == "s FAILED at t: no error recorded"


# ------------------------------------------------------------------------------------ gates, rollback, verdict


def test_gate_decision_is_the_gates_line_plus_the_reflex_time():
    promote = {"status": "success", "line": "Promote past 5 %: within SLO (10 s healthy, 10/10 polls healthy)"}
    assert gate_decision_text("5 %", promote) == promote["line"]
    halt = {"status": "halt", "line": "Halt at 25 %: green 5xx 3.2 % > 1.0 % (3 breaches in a row) — runbook: x",
            "decided_at": 100.0, "traffic_restored_at": 100.25}
    assert gate_decision_text("25 %", halt) == halt["line"] + "; reflex rollback: traffic on blue 0.25 s after the decision"
    assert gate_decision_text("25 %", {**halt, "reflex_error": "weights read back 90/10"}).endswith(
        "; reflex rollback NOT verified: weights read back 90/10")
    assert gate_decision_text("25 %", None, "trigger crashed") == \
        "Gate at 25 %: no decision recorded, the run halts: trigger crashed"


HALT = {"step": "25 %", "reason": "Halt at 25 %: green 5xx 3.2 % > 1.0 %", "decided_at": 100.0, "traffic_restored_at": 100.4}
FLAGS = {"verdict": "PASS", "verified_at": 100.2}
TRAFFIC = {"verdict": "PASS", "weights": {"blue": 100, "green": 0}, "verified_at": 103.0}


def test_rollback_says_what_how_fast_and_why():
    text = rollback_text(HALT, FLAGS, TRAFFIC, {"reason": "Rollback verified: 10/10 probes served by blue"})
    assert text == ("Rolled back after 25 % in 0.40 s from the halt decision: flags -> Rails, traffic -> 100 % blue "
                    "(weights blue 100, green 0); Rollback verified: 10/10 probes served by blue. "
                    "Why: Halt at 25 %: green 5xx 3.2 % > 1.0 %")
    # No reflex (smoke halt, approval halt): the rollback task's read-back time counts.
    assert rollback_seconds({"decided_at": 100.0}, TRAFFIC) == 3.0
    assert rollback_seconds({}, TRAFFIC) is None
    failed = rollback_text(HALT, FLAGS, None, None, "Blue not serving alone after rollback: 2 failed probes")
    assert failed.startswith("Rollback after 25 % NOT verified (flags -> Rails): Blue not serving alone")
    assert rollback_text(None, None, None, None, "boom").endswith("Why: no halt recorded")


def test_verdict_database_and_emergency_texts():
    assert verdict_text({"outcome": "promoted", "reason": "Promoted: 100 % green"}) == "Cutover verdict: promoted: Promoted: 100 % green"
    assert verdict_text(None, "Outcome rolled_back: Halt at 25 %") == "Cutover verdict: Outcome rolled_back: Halt at 25 %"
    assert database_rollback_text({"reason": "down migration verified"}).endswith("down migration verified")
    assert database_rollback_text(None, "refused").startswith("Database rollback (down migration) NOT verified")
    latch = {"latched": True, "reason": "payments failing on green",
             "stop": json.dumps({"reason": "payments failing on green", "requested_by": "alice", "requested_at": 1.0,
                                 "source_run_id": "r"})}
    assert emergency_latched_text(latch).startswith("EMERGENCY STOP latched by alice: payments failing on green;")
    assert emergency_latched_text({"latched": False, "error": "Redis down"}).startswith(
        "EMERGENCY STOP requested but NOT latched: Redis down")
    assert emergency_report_text({"line": "Emergency rollback in 2.1 s"}) == "Emergency rollback: Emergency rollback in 2.1 s"
    assert emergency_report_text(None, "flags failed").startswith("Emergency rollback INCOMPLETE: flags failed")


def test_deadline_text_names_the_bound_and_its_plan():
    run = {"dag_id": "cutover", "dag_run_id": RUN, "queued_at": "2026-12-08T02:30:00Z", "state": "running"}
    text = deadline_missed_text("the cutover run", 22500, "default", run, "2026-12-08T08:45:00Z")
    assert text == ("DEADLINE MISSED: the cutover run not done 6 h 15 min after the run was queued "
                    "(2026-12-08T02:30:00Z); the bound comes from plan 'default'; run state running, "
                    "deadline was 2026-12-08T08:45:00Z")
    assert format_duration(0) == "0 s" and format_duration(61) == "1 min 1 s" and format_duration(3600) == "1 h"
