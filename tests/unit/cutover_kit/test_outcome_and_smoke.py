from __future__ import annotations

from types import SimpleNamespace

import pytest

from cutover_kit.outcome import choose_after_gate, final_outcome, halt_reason
from cutover_kit.smoke import SmokeCheckError, load_checks, run_checks


def test_branch_proceeds_only_on_explicit_success():
    assert choose_after_gate({"status": "success", "line": "ok"}, "next", "halt")[0] == "next"
    assert choose_after_gate({"status": "failed", "line": "Halt at 25 %: x"}, "next", "halt") == ("halt", "Roll back: Halt at 25 %: x")
    assert choose_after_gate({"status": "inconclusive", "line": "Give up"}, "next", "halt")[0] == "halt"
    assert choose_after_gate(None, "next", "halt")[0] == "halt"


def test_halt_reason_prefers_the_gate_then_smoke_then_failures():
    assert halt_reason("25 %", {"status": "failed", "line": "Halt at 25 %: boom"}, None, []) == "Halt at 25 %: boom"
    assert "Smoke at 5 %" in halt_reason("5 %", None, {"verdict": "FAIL", "reason": "Smoke at 5 %: FAIL"}, [])
    assert "baseline" in halt_reason("5 %", None, None, ["stage_12.capture_blue_baseline"])
    assert "did not run" in halt_reason("5 %", None, None, [])


def test_final_outcome():
    halt = {"reason": "Halt at 25 %: x"}
    assert final_outcome({"reason": "Promoted"}, None, None, []).outcome == "promoted"
    assert final_outcome(None, halt, {"verified": True}, ["gate"]).outcome == "rolled_back"
    assert final_outcome(None, halt, None, ["gate"]).outcome == "failed"
    assert final_outcome(None, None, None, ["stage_05.redis"]).outcome == "failed"
    assert final_outcome({"reason": "Promoted"}, None, None, ["x"]).outcome == "failed"


def probe(status, body=None, error=None):
    return SimpleNamespace(status=status, body=body, error=error, elapsed_ms=1.0)


def test_smoke_round_trip_reads_back_what_it_wrote():
    answers = {
        ("GET", "/healthz"): probe(200, {"status": "ok"}),
        ("GET", "/readyz"): probe(200, {"status": "ready"}),
        ("GET", "/api/users/1"): probe(200, {"id": 1, "email": "a@b"}),
        ("POST", "/api/orders"): probe(201, {"id": 77}),
        ("GET", "/api/orders/77"): probe(200, {"id": 77, "amount_cents": 1234}),
    }
    results = run_checks(load_checks(), "app_green", lambda m, p, b: answers[(m, p)])
    assert all(r.ok for r in results), [r.line for r in results]


def test_smoke_names_the_failing_check_and_field():
    answers = {
        ("GET", "/healthz"): probe(200),
        ("GET", "/readyz"): probe(None, error="ConnectionError: refused"),
        ("GET", "/api/users/1"): probe(200, {"id": 1}),
        ("POST", "/api/orders"): probe(500, {"error": "x"}),
    }
    results = run_checks(load_checks(), "app_green", lambda m, p, b: answers[(m, p)])
    lines = [r.line for r in results if not r.ok]
    assert any("readiness" in line and "refused" in line for line in lines)
    assert any("missing keys ['email']" in line for line in lines)
    assert any("write order" in line and "HTTP 500" in line for line in lines)
    assert any("read back order" in line and "did not provide" in line for line in lines)


def test_malformed_smoke_file_is_refused(tmp_path):
    bad = tmp_path / "checks.yaml"
    bad.write_text("checks:\n  - name: x\n    method: FETCH\n    path: /\n    expect_status: 200\n")
    with pytest.raises(SmokeCheckError, match=r"checks\[0\].method"):
        load_checks(bad)


def test_validation_decision_needs_an_explicit_clean_pass():
    from cutover_kit.outcome import choose_after_validation

    applied, noop = {"verdict": "PASS", "applied": True}, {"verdict": "PASS", "applied": False}
    assert choose_after_validation({"verdict": "PASS", "failed": 0}, None, applied, ["a", "b"], "halt")[0] == ["a", "b"]
    assert choose_after_validation({"verdict": "PASS", "failed": 2}, None, noop, ["a"], "halt")[0] == "halt"
    # The suite ran and failed: roll back, even when the expand was there before this run.
    chosen, line = choose_after_validation(None, {"reason": "2 of 34 expectations failed: orders amount"}, noop, ["a"], "halt")
    assert (chosen, line) == ("halt", "Roll back the database: 2 of 34 expectations failed: orders amount")
    # This run applied the expand, then a task before validation failed: undo the expand.
    assert choose_after_validation(None, None, applied, ["a"], "halt")[0] == "halt"
    # Stopped before the schema changed (refused plan, emergency stop, failed backup; or the
    # expand was already there): nothing of this run's to undo, so no down migration.
    for expand in (None, noop):
        chosen, line = choose_after_validation(None, None, expand, ["a"], "halt")
        assert chosen == []
        assert line.startswith("Halt, database left as it was")


def test_lost_data_outranks_a_clean_rollback_or_promotion():
    assert final_outcome({"reason": "Promoted"}, None, None, [], integrity_failed=True).outcome == "failed"
    halt = {"reason": "Halt at 25 %: x"}
    outcome = final_outcome(None, halt, {"verified": True}, [], integrity_failed=True)
    assert outcome.outcome == "failed" and "integrity" in outcome.reason and "Halt at 25 %" in outcome.reason


def test_emergency_stop_without_a_halt_is_never_promoted():
    from cutover_kit.outcome import final_outcome

    stop = "emergency rollback by alice at 10:00:00 UTC (manual__1): pager"
    assert final_outcome(None, None, None, ["promote"], emergency_stop=stop).outcome == "failed"
    promoted = final_outcome({"reason": "Promoted"}, None, None, [], emergency_stop=stop)
    assert promoted.outcome == "failed" and promoted.reason.startswith("Stopped after promotion by emergency rollback by alice")
    halted = final_outcome(None, {"reason": f"Halt at 25 %: {stop}"}, {"verified": True}, [], emergency_stop=stop)
    assert halted.outcome == "rolled_back" and "pager" in halted.reason


def test_down_migration_only_with_green_drained():
    from cutover_kit.stages.database_rollback import down_migration_refusal

    assert down_migration_refusal(0) is None
    for percent in (0.4, 5, 100):
        refusal = down_migration_refusal(percent)
        assert refusal.startswith(f"Down migration refused: green still gets {percent:g} % of the traffic")


def test_load_test_decision_proceeds_only_on_an_explicit_pass():
    from cutover_kit.outcome import choose_after_load_test

    stage = {"stage_06_load_testing.start_stage_instances": "success", "stage_06_load_testing.run_load_test": "failed"}
    passed = {"verdict": "pass", "reason": "Capacity ok: green knee 200 rps"}
    assert choose_after_load_test(passed, None, stage, "drill", "halt") == ("drill", "Proceed: Capacity ok: green knee 200 rps")
    halted = {"verdict": "halt", "reason": "Halt before traffic: green knee 40 rps < blue 200 rps - 30% (140 rps)"}
    assert choose_after_load_test(halted, None, stage, "drill", "halt") == ("halt", halted["reason"])
    broken = {"reason": "load test could not measure: target http://127.0.0.1:1 is unreachable"}
    assert choose_after_load_test(None, broken, stage, "drill", "halt") == ("halt", f"Halt before traffic: {broken['reason']}")
    start_failed = {"stage_06_load_testing.start_stage_instances": "failed", "stage_06_load_testing.run_load_test": "upstream_failed"}
    chosen, line = choose_after_load_test(None, None, start_failed, "drill", "halt")
    assert chosen == "halt" and "stage_06_load_testing.start_stage_instances" in line
    # Stage 6 never ran because an earlier stage failed: nothing follows (the run fails as before).
    never = {"stage_06_load_testing.start_stage_instances": "upstream_failed", "stage_06_load_testing.run_load_test": "upstream_failed"}
    chosen, line = choose_after_load_test(None, None, never, "drill", "halt")
    assert chosen == [] and "did not run" in line


def test_security_decision_proceeds_only_on_the_judges_explicit_pass():
    from cutover_kit.outcome import choose_after_security_audit

    passed = {"verdict": "pass", "reason": "Security ok: no high+ finding on green"}
    assert choose_after_security_audit(passed, None, "success", "drill", "halt") == ("drill", f"Proceed: {passed['reason']}")
    halted = {"verdict": "halt", "reason": "Halt before traffic: high auth-unauthenticated-access on green at GET /api/admin/users"}
    assert choose_after_security_audit(halted, None, "failed", "drill", "halt") == ("halt", halted["reason"])
    broken = {"reason": "the plan has no security section"}
    assert choose_after_security_audit(None, broken, "failed", "drill", "halt") == ("halt", f"Halt before traffic: {broken['reason']}")
    chosen, line = choose_after_security_audit(None, None, "failed", "drill", "halt")
    assert chosen == "halt" and "judge failed without a verdict" in line
    # Stage 7 skipped (stage 6 halted or never ran): nothing follows from here.
    chosen, line = choose_after_security_audit(None, None, "skipped", "drill", "halt")
    assert chosen == [] and "did not run" in line
