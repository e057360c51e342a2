"""Whole rehearsals: sandbox, traffic, faults and one real `cutover` DAG run each (~2-3 min each)."""

from __future__ import annotations

import json

import pytest

from sandbox.rehearsal import run_rehearsal

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(autouse=True)
def private_sandbox(monkeypatch):
    """Each rehearsal on its own state dir and ports (+2000, SANDBOX_E2E_PORT_OFFSET), beside any
    developer sandbox or another checkout's test run."""
    import os
    import tempfile
    from pathlib import Path

    from sandbox.config import PORT_SETTINGS

    state_dir = Path(tempfile.mkdtemp(prefix="cutover-e2e-"))
    state_dir.chmod(0o755)  # PostgreSQL runs as another user
    monkeypatch.setenv("SANDBOX_DIR", str(state_dir))
    # Stage 2 migrates for real; a smaller data set than `make rehearsal` keeps CI time in bounds.
    monkeypatch.setenv("SANDBOX_SCHEMA", "legacy")
    monkeypatch.setenv("SANDBOX_ORDERS", "50000")
    # The rehearsal sets SANDBOX_FLAG_BACKEND from its plan (setdefault): start each test without
    # it, and undo what a rehearsal set (setenv first, so monkeypatch restores "unset").
    monkeypatch.setenv("SANDBOX_FLAG_BACKEND", "file")
    monkeypatch.delenv("SANDBOX_FLAG_BACKEND")
    offset = int(os.environ.get("SANDBOX_E2E_PORT_OFFSET", "2000"))
    for name, default in PORT_SETTINGS.values():
        monkeypatch.setenv(name, str(default + offset))


def rehearse(scenario: str, tmp_path) -> dict:
    path = tmp_path / f"{scenario}.json"
    result = run_rehearsal(scenario, path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(result, default=str))
    for field in ("scenario", "outcome", "final_weights", "stages", "detection_seconds", "rollback_seconds", "requests", "writes"):
        assert field in result
    assert result["requests"]["total"] > 500
    assert result["requests"]["failed_not_injected"] == 0, result["requests"]
    assert result["writes"]["acknowledged"] > 100 and result["writes"]["lost"] == 0, result["writes"]
    # The real apps, as they reported themselves at the start of the run.
    assert result["apps"]["blue"]["runtime"].startswith("ruby 3.") and " / rails 6.1." in result["apps"]["blue"]["runtime"]
    assert result["apps"]["green"]["runtime"].startswith("node 20.") and " / fastify 5." in result["apps"]["green"]["runtime"]
    return result


def test_happy_promotes_to_all_green(tmp_path):
    result = rehearse("happy", tmp_path)
    assert result["data_validation"]["expectations"] > 20 and result["data_validation"]["failed"] == 0
    assert result["backup"]["verified"] and result["backup"]["bytes"] > 0
    assert result["outcome"] == "promoted", result["reason"]
    assert result["final_weights"] == {"blue": 0, "green": 100}
    assert result["detection_seconds"] is None and result["rollback_seconds"] is None
    assert result["security"]["verdict"] == "pass" and not result["security"]["blocking"], result["security"]
    assert result["flags_rollback_seconds"] is None
    assert result["requests"]["failed"] == 0
    # Stage 3 put every flag at Rails; each step turned green's own code on before its weight.
    ran = {stage["name"]: stage for stage in result["stages"]}
    assert ran["stage_03_feature_flags.flags_at_rails_default"]["verdict"] == "PASS"
    assert all(ran[f"{group}.step_{p}.set_flags"]["verdict"] == "PASS" for group, p in
               (("stage_10_traffic_migration", 5), ("stage_10_traffic_migration", 50), ("stage_13_full_cutover", 100)))
    assert result["served_by"].get("typescript", 0) > 100 and result["served_by"].get("rails", 0) > 100, result["served_by"]
    # Stage 6 on the stage instances: both colors measured, green judged able to carry the plan's load.
    load = result["load_test"]
    assert load["verdict"] == "pass", load
    assert load["blue"]["knee_rps"] > 0 and load["green"]["knee_rps"] >= load["plan"]["required_rps"], load
    assert all(ran[f"stage_06_load_testing.{task}"]["verdict"] == "PASS"
               for task in ("start_stage_instances", "run_load_test", "stop_stage_instances"))
    # Stage 4 proved the run's observability before any traffic moved (more checks may join the group).
    monitoring = [stage for stage in result["stages"] if stage["name"].startswith("stage_04_monitoring.")]
    assert {stage["name"].split(".", 1)[1] for stage in monitoring} >= {
        "check_rules_loaded", "check_alert_routing", "check_dashboard_queries", "check_json_logs", "check_error_reporting"}, monitoring
    assert all(stage["verdict"] == "PASS" for stage in monitoring), monitoring
    assert "routed to 'green-page'" in ran["stage_04_monitoring.check_alert_routing"]["reason"]
    from datetime import datetime
    stage_4 = (max(datetime.fromisoformat(stage["ended_at"]) for stage in monitoring)
               - min(datetime.fromisoformat(stage["started_at"]) for stage in monitoring)).total_seconds()
    print(f"stage 4 (stage_04_monitoring) took {stage_4:.1f} s")
    assert result["behaved_as_expected"]


def test_green_errors_roll_back_naming_the_error_rate(tmp_path):
    result = rehearse("green-errors", tmp_path)
    assert result["outcome"] == "rolled_back"
    assert result["final_weights"] == {"blue": 100, "green": 0}
    # Either the gate (green 5xx ratio) or a stage 11 smoke check on green (HTTP 500 (5xx)) may
    # catch it first; both must halt at the 25 % step.
    assert "Halt at 25 %" in result["reason"] and "5xx" in result["reason"]
    assert 0 < result["detection_seconds"] < 15
    assert 0 <= result["rollback_seconds"] < 1
    # Two-level rollback: every app served Rails (verified) before traffic went back to blue.
    assert result["flags_rollback_seconds"] is not None, result
    assert 0 <= result["flags_rollback_seconds"] <= result["rollback_seconds"], (result["flags_rollback_seconds"], result["rollback_seconds"])
    ran = [stage["name"] for stage in result["stages"]]
    assert ran.index("rollback.flags_to_rails") < ran.index("rollback.route_all_to_blue")
    assert all(stage["verdict"] == "PASS" for stage in result["stages"]
               if stage["name"] in ("rollback.flags_to_rails", "rollback.route_all_to_blue", "rollback.verify_blue_serving"))
    # The war room heard it: the halt with its reason (the gate's decision, or stage 11's failure),
    # then the rollback naming the step, its levels and its time; every notice carries the run id.
    notices = result["notifications"]
    assert all(notice["kind"] and notice["text"] and notice["at"] for notice in notices), notices
    halt_notices = [n for n in notices if (n["kind"] == "gate_decision" and n["text"].startswith("Halt at 25 %"))
                    or (n["kind"] == "stage_failed" and " FAILED at step_25.stage_11_smoke_checks: " in n["text"])]
    assert halt_notices and "5xx" in halt_notices[0]["text"], notices
    rollbacks = [n for n in notices if n["kind"] == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["text"].startswith("Rolled back after 25 %"), notices
    assert "flags -> Rails" in rollbacks[0]["text"] and "traffic -> 100 % blue" in rollbacks[0]["text"], rollbacks
    assert "Why: Halt at 25 %" in rollbacks[0]["text"], rollbacks
    assert notices.index(halt_notices[0]) < notices.index(rollbacks[0])
    verdicts = [n for n in notices if n["kind"] == "verdict"]
    assert len(verdicts) == 1 and "rolled_back" in verdicts[0]["text"], verdicts
    assert notices.index(rollbacks[0]) < notices.index(verdicts[0])
    started = [n["step"] for n in notices if n["kind"] == "stage_started"]
    assert started[:3] == ["stage_01_deployment_readiness", "stage_02_database_preparation", "stage_03_feature_flags"], started
    assert result["behaved_as_expected"]


def test_green_errors_with_the_flags_in_unleash_roll_back_both_levels(tmp_path):
    """Measured before: a plan with flag_backend unleash ended failed in stage 1 (the flags did not
    exist yet; only stage 3 creates them). The sandbox's Unleash server starts without them."""
    result = rehearse("green-errors-unleash", tmp_path)
    assert result["plan"]["flag_backend"] == "unleash"
    ran = {stage["name"]: stage for stage in result["stages"]}
    check = ran["stage_01_deployment_readiness.check_flag_store"]
    assert check["verdict"] == "PASS" and "flags absent: green.feature.users" in check["reason"], check
    assert "stage 3 will create them at the Rails-safe default" in check["reason"], check
    assert ran["stage_03_feature_flags.flags_at_rails_default"]["verdict"] == "PASS"
    assert result["outcome"] == "rolled_back", result["reason"]
    assert result["final_weights"] == {"blue": 100, "green": 0}
    assert "Halt at 25 %" in result["reason"] and "5xx" in result["reason"], result["reason"]
    # Two levels: flags -> Rails read back from Unleash and evaluated by every app, then traffic.
    assert result["flags_rollback_seconds"] is not None, result
    assert 0 <= result["flags_rollback_seconds"] <= result["rollback_seconds"], (result["flags_rollback_seconds"], result["rollback_seconds"])
    names = [stage["name"] for stage in result["stages"]]
    assert names.index("rollback.flags_to_rails") < names.index("rollback.route_all_to_blue")
    flags_back = ran["rollback.flags_to_rails"]
    assert flags_back["verdict"] == "PASS" and "read back from unleash http://127.0.0.1:" in flags_back["reason"], flags_back
    assert "evaluated by every app" in flags_back["reason"], flags_back
    assert all(ran[name]["verdict"] == "PASS" for name in ("rollback.route_all_to_blue", "rollback.verify_blue_serving"))
    assert result["behaved_as_expected"]


def test_green_crash_rolls_back(tmp_path):
    result = rehearse("green-crash", tmp_path)
    assert result["outcome"] == "rolled_back"
    assert result["final_weights"] == {"blue": 100, "green": 0}
    # The gate ("green is down") or the stage 11 smoke check on green ("connection refused") may
    # see the dead process first; either halts at the 5 % step.
    assert "Halt at 5 %" in result["reason"]
    assert "green is down" in result["reason"] or "app_green" in result["reason"]
    assert result["behaved_as_expected"]


def test_data_corruption_rolls_the_database_back_and_moves_no_traffic(tmp_path):
    result = rehearse("data-corruption", tmp_path)
    assert result["outcome"] == "rolled_back", result["reason"]
    assert "Halt before any traffic moved" in result["reason"] and "amount" in result["reason"]
    assert result["data_validation"]["failed"] >= 1
    assert result["final_weights"] == {"blue": 100, "green": 0}
    ran = {stage["name"]: stage["verdict"] for stage in result["stages"]}
    assert ran["database_rollback.down_migration_verified"] == "PASS"
    assert ran["verify_data_integrity"] == "PASS"
    assert not any(".set_weights" in name and verdict != "SKIPPED" for name, verdict in ran.items()), "traffic must never move"
    assert result["behaved_as_expected"]


def test_interrupted_rehearsal_leaves_no_process_behind(tmp_path, monkeypatch):
    """Ctrl-C in the middle of the DAG run: the rehearsal stops its traffic process (its own
    session, so the interrupt reaches the rehearsal only), the fault schedule and the sandbox."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from sandbox.config import REPO_ROOT

    monkeypatch.setenv("SANDBOX_ORDERS", "2000")  # only the start-up matters here
    state_dir = Path(os.environ["SANDBOX_DIR"])
    acknowledged = state_dir / "acknowledged_writes.txt"
    log = tmp_path / "rehearsal.log"
    with open(log, "w") as output:
        rehearsal = subprocess.Popen(
            [sys.executable, "-m", "sandbox.rehearsal", "--scenario", "happy", "--result", str(tmp_path / "r.json")],
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'plugins'}"},
            stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not acknowledged.exists():  # the traffic process writes it first thing
            assert rehearsal.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the rehearsal never started its traffic"
            time.sleep(0.5)
        time.sleep(3)  # inside dag.test() now
        assert _processes_mentioning(state_dir), "sandbox and traffic process running"
        rehearsal.send_signal(signal.SIGINT)
        rehearsal.wait(120)
    finally:
        if rehearsal.poll() is None:
            rehearsal.kill()
            rehearsal.wait()
    assert rehearsal.returncode != 0 and not (tmp_path / "r.json").exists()
    assert _processes_mentioning(state_dir) == []


def _processes_mentioning(path) -> list[str]:
    """Live processes whose command line mentions `path` (sandbox services, the traffic process)."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if entry.name.isdigit() and str(path) in argv and state not in ("Z", "X"):
            found.append(f"{entry.name}: {argv[:160]}")
    return found


def test_green_under_capacity_halts_at_stage_6_before_green_gets_any_traffic(tmp_path):
    result = rehearse("green-under-capacity", tmp_path)
    assert result["outcome"] == "rolled_back", result["reason"]
    assert "Halt at stage 6 (load testing)" in result["reason"] and "green knee" in result["reason"], result["reason"]
    load = result["load_test"]
    assert load["verdict"] == "halt" and load["green"]["knee_rps"] < load["plan"]["required_rps"], load
    assert result["final_weights"] == {"blue": 100, "green": 0}
    # No user request ever reached green: the drill (its first traffic) never ran.
    assert result["served_by"].get("typescript", 0) == 0, result["served_by"]
    ran = {stage["name"]: stage for stage in result["stages"]}
    assert ran.get("stage_08_rollback_procedures.rollback_drill", {"verdict": "SKIPPED"})["verdict"] == "SKIPPED"
    assert ran["stage_06_load_testing.stop_stage_instances"]["verdict"] == "PASS"  # cleaned up whatever happened
    assert ran["rollback.verify_blue_serving"]["verdict"] == "PASS"
    assert result["requests"]["failed"] == 0
    assert result["behaved_as_expected"]


def rehearse_data_fault(scenario: str, tmp_path) -> dict:
    """A data fault at 25 %: the step's integrity probe (stage 11's first look, one task after the
    weights change, or the gate's on its first polls) halts that step at once and the reflex rolls
    back; the end-of-run check then fails the run on the rows damaged before the halt."""
    path = tmp_path / f"{scenario}.json"
    result = run_rehearsal(scenario, path)
    assert result["requests"]["failed_not_injected"] == 0, result["requests"]
    assert result["final_weights"] == {"blue": 100, "green": 0}
    ran = {stage["name"]: stage for stage in result["stages"]}
    assert ran["stage_10_traffic_migration.step_5.slo_gate"]["verdict"] == "PASS"  # the 5 % step was clean
    smoke = ran["stage_10_traffic_migration.step_25.stage_11_smoke_checks"]
    gate = ran.get("stage_10_traffic_migration.step_25.slo_gate", {"verdict": "NOT_RUN", "reason": ""})
    # Exactly one of them found it, and its line names the data (table, column, row).
    detector = smoke if smoke["verdict"] == "FAIL" else gate
    assert detector["verdict"] == "FAIL" and "data: orders id" in detector["reason"], (smoke, gate)
    assert "Halt at 25 %: data: orders id" in ran["rollback.halt_at_25"]["reason"], ran["rollback.halt_at_25"]
    # Halted where the fault started: the 50 % step never ran (skipped tasks are listed, as SKIPPED).
    assert ran.get("stage_10_traffic_migration.step_50.set_flags", {"verdict": "SKIPPED"})["verdict"] == "SKIPPED"
    assert result["outcome"] == "failed" and "Data integrity check failed after: Halt at 25 %: data:" in result["reason"]
    assert ran["verify_data_integrity"]["verdict"] == "FAIL"
    assert all(ran[name]["verdict"] == "PASS" for name in ("rollback.flags_to_rails", "rollback.route_all_to_blue",
                                                           "rollback.verify_blue_serving"))
    assert 0 <= result["rollback_seconds"] < 1
    assert result["behaved_as_expected"], result
    return result


def test_green_corrupting_writes_halts_the_step_naming_the_row(tmp_path):
    result = rehearse_data_fault("green-corrupts-writes", tmp_path)
    assert "amount_cents" in result["reason"] and "!= amount" in result["reason"] and "(old vs new column" in result["reason"]
    assert result["writes"]["lost"] == 0
    # Measured from the first corrupted row (its created_at) to the decision; the <= 3 s target is a
    # benchmark figure (BENCHMARKS.md: it depends on one Airflow task start-up), not a timed test.
    assert result["first_bad_write_at"] is not None
    assert result["detection_from_first_bad_write_seconds"] >= 0, result["detection_from_first_bad_write_seconds"]


def test_green_dropping_writes_halts_the_step_naming_the_missing_order(tmp_path):
    result = rehearse_data_fault("green-drops-writes", tmp_path)
    assert "acknowledged to a client but not in the database" in result["reason"]
    # Every lost write is one green acknowledged while its drop_writes fault was on.
    assert result["writes"]["lost"] > 0 and result["writes"]["lost"] == result["writes"]["lost_injected"], result["writes"]
    assert result["detection_from_first_bad_write_seconds"] >= 0, result["detection_from_first_bad_write_seconds"]


def test_green_insecure_halts_at_stage_7_before_green_gets_any_traffic(tmp_path):
    result = rehearse("green-insecure", tmp_path)
    assert result["outcome"] == "rolled_back", result["reason"]
    assert "Halt at stage 7 (security audit)" in result["reason"], result["reason"]
    # The reason names the finding: the check, the route and what it answered.
    assert "auth-unauthenticated-access" in result["reason"] and "GET /api/admin/users" in result["reason"], result["reason"]
    security = result["security"]
    assert security["verdict"] == "halt" and security["blocking"], security
    assert {(f["id"], f["color"]) for f in security["blocking"]} == {("auth-unauthenticated-access", "green")}, security
    assert not any(f["color"] == "blue" and f["id"] == "auth-unauthenticated-access" for f in security["findings"])
    assert result["load_test"]["verdict"] == "pass"  # stage 6 passed; stage 7 is what stopped the run
    assert result["final_weights"] == {"blue": 100, "green": 0}
    assert result["served_by"].get("typescript", 0) == 0, result["served_by"]
    ran = {stage["name"]: stage for stage in result["stages"]}
    assert ran.get("stage_08_rollback_procedures.rollback_drill", {"verdict": "SKIPPED"})["verdict"] == "SKIPPED"
    # Stage 7 audited the stage instances, which were stopped after it whatever happened.
    assert ran["stage_06_load_testing.stop_stage_instances"]["started_at"] >= ran["stage_07_security_audit.judge"]["ended_at"]
    assert ran["stage_06_load_testing.stop_stage_instances"]["verdict"] == "PASS"
    assert ran["rollback.halt_at_security_audit"]["verdict"] == "FAIL"
    assert ran["rollback.verify_blue_serving"]["verdict"] == "PASS"
    assert result["requests"]["failed"] == 0
    assert result["behaved_as_expected"]


def test_green_insecure_after_promotion_rolls_back_at_the_next_smoke_check(tmp_path):
    result = rehearse("green-insecure-after-promotion", tmp_path)
    assert result["outcome"] == "rolled_back", result["reason"]
    assert result["security"]["verdict"] == "pass", result["security"]  # green was clean before traffic
    # A stage 11 smoke check at 25 % or 50 % (the first after the weakness appeared) rolls back,
    # naming the ZAP rule, the route and the evidence.
    assert any(f"Halt at {step} %" in result["reason"] for step in (25, 50)), result["reason"]
    assert "zap-10037" in result["reason"] and "X-Powered-By: Fastify" in result["reason"], result["reason"]
    assert "GET /api/users/1" in result["reason"], result["reason"]
    assert result["final_weights"] == {"blue": 100, "green": 0}
    assert result["requests"]["failed_not_injected"] == 0
    assert result["behaved_as_expected"]
