from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sandbox.result import TaskRecord, build_result, render_table

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
SCENARIO = {"name": "green-errors", "plan": {}, "expect_outcome": "rolled_back", "expect_reason_contains": "5xx"}
TRAFFIC = {"total": 900, "failed": 12, "failed_injected": 12, "failed_not_injected": 0, "writes_acknowledged": 250, "writes_lost": 0}


def record(task_id, state, offset, value=None, **extra):
    return TaskRecord(task_id, state, T0 + timedelta(seconds=offset), T0 + timedelta(seconds=offset + 1), value, **extra)


def rolled_back_records(decided_at=1000.0):
    gate = {"status": "failed", "line": "Halt at 25 %: green 5xx 14.1 % > 1.0 %", "decided_at": decided_at, "traffic_restored_at": decided_at + 0.004}
    return [
        record("stage_08_rollback_procedures.rollback_drill", "success", 1, {"verdict": "PASS", "reason": "drill", "rollback_seconds": 0.004}),
        record("stage_10_traffic_migration.step_25.slo_gate", "failed", 2, gate_result=gate),
        record("stage_10_traffic_migration.step_25.decide", "success", 3, "rollback.halt_at_25"),
        record("rollback.halt_at_25", "success", 4, {"verdict": "FAIL", "reason": gate["line"], "decided_at": decided_at, "traffic_restored_at": gate["traffic_restored_at"]}),
        record("rollback.route_all_to_blue", "success", 5, {"verdict": "PASS", "reason": "All on blue", "verified_at": decided_at + 3}),
        record("rollback.verify_blue_serving", "success", 6, {"verdict": "PASS", "reason": "ok", "verified": True}),
        record("cutover_verdict", "failed", 7),
        TaskRecord("stage_10_traffic_migration.step_50.set_weights", "skipped", None, None),
    ]


def test_rolled_back_result_has_the_public_fields_and_timings():
    result = build_result(scenario=SCENARIO, records=rolled_back_records(), final_weights={"blue": 100, "green": 0},
                          fault_onsets=[{"color": "green", "kind": "errors", "start": 996.5, "end": None}], traffic_report=TRAFFIC, wall_seconds=150)
    assert result["outcome"] == "rolled_back" and result["behaved_as_expected"]
    assert result["detection_seconds"] == 3.5
    assert result["rollback_seconds"] == 0.004  # the gate's reflex, not the later task
    assert result["requests"] == {"total": 900, "failed": 12, "failed_injected": 12, "failed_not_injected": 0, "failed_not_injected_samples": []}
    assert result["writes"] == {"acknowledged": 250, "lost": 0, "lost_injected": 0}
    assert result["first_bad_write_at"] is None and result["detection_from_first_bad_write_seconds"] is None
    names = [stage["name"] for stage in result["stages"]]
    assert "stage_10_traffic_migration.step_50.set_weights" not in names  # never ran
    gate_row = next(s for s in result["stages"] if s["name"].endswith("slo_gate"))
    assert gate_row["verdict"] == "FAIL" and gate_row["reason"].startswith("Halt at 25 %")
    assert next(s for s in result["stages"] if s["name"].endswith("decide"))["reason"] == "-> rollback.halt_at_25"
    assert "BEHAVED AS EXPECTED" in render_table(result)


def test_a_non_injected_failure_or_lost_write_means_misbehaved():
    for bad in ({"failed_not_injected": 1}, {"writes_lost": 1}):
        result = build_result(scenario=SCENARIO, records=rolled_back_records(), final_weights={"blue": 100, "green": 0},
                              fault_onsets=[], traffic_report={**TRAFFIC, **bad}, wall_seconds=1)
        assert not result["behaved_as_expected"]
        assert result["detection_seconds"] is None  # no fault onset recorded


def test_unverified_rollback_is_failed_not_rolled_back():
    records = [r for r in rolled_back_records() if r.task_id != "rollback.verify_blue_serving"]
    result = build_result(scenario=SCENARIO, records=records, final_weights={"blue": 100, "green": 0}, fault_onsets=[], traffic_report=TRAFFIC, wall_seconds=1)
    assert result["outcome"] == "failed" and "NOT verified" in result["reason"]


def test_flags_rollback_seconds_from_the_reflex_else_from_the_rollback_task():
    records = rolled_back_records()
    halt = next(r for r in records if r.task_id == "rollback.halt_at_25")
    with_flags = [r if r is not halt else record("rollback.halt_at_25", "success", 4, {**halt.return_value, "flags_restored_at": 1000.062})
                  for r in records]
    result = build_result(scenario=SCENARIO, records=with_flags, final_weights={"blue": 100, "green": 0}, fault_onsets=[],
                          traffic_report={**TRAFFIC, "by_served_by": {"rails": 800, "typescript": 100}}, wall_seconds=1)
    assert result["flags_rollback_seconds"] == 0.062 and result["rollback_seconds"] == 0.004
    assert result["served_by"] == {"rails": 800, "typescript": 100}
    # No reflex (e.g. the gate never reported): the rollback group's own verified flip counts.
    task_only = records + [record("rollback.flags_to_rails", "success", 5, {"verdict": "PASS", "verified_at": 1001.5})]
    result = build_result(scenario=SCENARIO, records=task_only, final_weights={"blue": 100, "green": 0}, fault_onsets=[],
                          traffic_report=TRAFFIC, wall_seconds=1)
    assert result["flags_rollback_seconds"] == 1.5 and result["served_by"] == {}
    assert "flags rollback 1.5 s" in render_table(result)


def test_a_failed_flag_rollback_is_not_a_verified_rollback():
    records = rolled_back_records() + [record("rollback.flags_to_rails", "failed", 5)]
    result = build_result(scenario=SCENARIO, records=records, final_weights={"blue": 100, "green": 0}, fault_onsets=[],
                          traffic_report=TRAFFIC, wall_seconds=1)
    assert result["outcome"] == "failed" and "flags not back on Rails" in result["reason"]


def test_the_post_launch_report_paths_are_in_the_result():
    report = {"html": "/tmp/r-report/cutover/run/report.html", "charts": {"timeline": "/tmp/r-report/cutover/run/timeline.png"},
              "record": "/tmp/r-report/cutover/run/record.json", "chart_errors": {}, "outcome": "rolled_back"}
    records = rolled_back_records() + [record("stage_15_post_launch.write_report", "success", 8, report)]
    result = build_result(scenario=SCENARIO, records=records, final_weights={"blue": 100, "green": 0}, fault_onsets=[],
                          traffic_report=TRAFFIC, wall_seconds=1)
    assert result["report"] == {"html": report["html"], "charts": report["charts"]}
    assert "post-launch report: /tmp/r-report/cutover/run/report.html" in render_table(result)
    # Every field a result had before stays (add, don't rename).
    assert {"scenario", "outcome", "final_weights", "stages", "detection_seconds", "rollback_seconds", "requests",
            "writes", "data_validation", "backup", "plan", "served_by"} <= set(result)


def test_without_a_report_task_the_field_is_null():
    result = build_result(scenario=SCENARIO, records=rolled_back_records(), final_weights={"blue": 100, "green": 0},
                          fault_onsets=[], traffic_report=TRAFFIC, wall_seconds=1)
    assert result["report"] is None and "post-launch report: not written" in render_table(result)


def test_notifications_are_listed_as_received_and_default_to_none():
    received = [{"at": 100.0, "kind": "rollback", "step": "25 %", "text": "Rolled back after 25 % in 0.40 s"}]
    result = build_result(scenario=SCENARIO, records=rolled_back_records(), final_weights={"blue": 100, "green": 0},
                          fault_onsets=[], traffic_report=TRAFFIC, wall_seconds=1, notifications=received)
    assert result["notifications"] == received
    assert build_result(scenario=SCENARIO, records=rolled_back_records(), final_weights={"blue": 100, "green": 0},
                        fault_onsets=[], traffic_report=TRAFFIC, wall_seconds=1)["notifications"] == []
# What the two apps' /metrics answer (abridged): blue's prometheus-client-mmap, green's prom-client.
BLUE_METRICS = ('# TYPE app_info gauge\napp_info{color="blue",runtime="ruby",version="3.1.2",rails="6.1.7.10",puma="5.6.5"} 1\n'
                'http_server_requests_total{code="200",method="GET",path="/api/users/:id"} 4\n')
GREEN_METRICS = ('http_requests_total{method="GET",route="/api/users/{id}",status_code="200"} 3\n'
                 '# HELP app_info Always 1\n# TYPE app_info gauge\n'
                 'app_info{color="green",runtime="node",version="20.18.0",fastify="5.12.8"} 1\n')


def test_apps_runtime_is_read_from_each_apps_app_info():
    from sandbox.result import app_runtime, parse_app_info

    assert app_runtime(parse_app_info(BLUE_METRICS)) == "ruby 3.1.2 / puma 5.6.5 / rails 6.1.7.10"
    assert app_runtime(parse_app_info(GREEN_METRICS)) == "node 20.18.0 / fastify 5.12.8"
    assert parse_app_info("http_requests_total 1\n") == []
    with pytest.raises(ValueError, match="no runtime and version labels"):
        app_runtime(parse_app_info('app_info{color="blue"} 1\n'))


def test_apps_are_a_field_of_the_result():
    apps = {"blue": {"runtime": "ruby 3.1.2 / rails 6.1.7.10 / puma 5.6.5", "version": "5bc1763", "rss_mb": {"web": 93.1, "worker": 88.0}},
            "green": {"runtime": "node 20.18.0 / fastify 5.12.8", "version": "5bc1763+changes"}}
    result = build_result(scenario=SCENARIO, records=rolled_back_records(), final_weights={"blue": 100, "green": 0},
                          fault_onsets=[], traffic_report=TRAFFIC, wall_seconds=1, apps=apps)
    assert result["apps"] == apps
    assert build_result(scenario=SCENARIO, records=rolled_back_records(), final_weights={"blue": 100, "green": 0},
                        fault_onsets=[], traffic_report=TRAFFIC, wall_seconds=1)["apps"] == {}


LOAD_SUMMARY = {
    "blue": {"knee_rps": 210.0, "p95_at_knee_ms": 45.0, "p95_at_peak_ms": 40.0, "saturated": False, "knee_reason": "no knee reached"},
    "green": {"knee_rps": 48.0, "p95_at_knee_ms": 240.0, "p95_at_peak_ms": 120.0, "saturated": True, "knee_reason": "knee 48 rps"},
    "verdict": "halt", "reason": "Halt before traffic: green knee 48 rps < blue 210 rps - 30% (147 rps)",
    "plan": {"peak_rps": 20}, "seconds": {"blue": 19.5, "green": 20.1}, "requests": {"blue": 2400, "green": 700},
}


def test_a_stage_6_halt_is_a_rollback_with_its_load_test_block():
    halt = {"verdict": "FAIL", "step": "load testing", "decided_at": 1000.0, "traffic_restored_at": None,
            "reason": "Halt at stage 6 (load testing), green never got traffic: green knee 48 rps < blue 210 rps"}
    records = [
        record("stage_06_load_testing.run_load_test", "failed", 1, load_test=LOAD_SUMMARY),
        record("decide_after_load_test", "success", 2, "rollback.halt_at_load_testing"),
        record("rollback.halt_at_load_testing", "success", 3, halt),
        record("rollback.flags_to_rails", "success", 4, {"verdict": "PASS", "reason": "flags", "verified_at": 1001.0}),
        record("rollback.route_all_to_blue", "success", 5, {"verdict": "PASS", "reason": "All on blue", "verified_at": 1002.0}),
        record("rollback.verify_blue_serving", "success", 6, {"verdict": "PASS", "reason": "ok", "verified": True}),
        TaskRecord("stage_08_rollback_procedures.rollback_drill", "skipped", None, None),
    ]
    scenario = {**SCENARIO, "name": "green-under-capacity", "expect_reason_contains": "Halt at stage 6 (load testing)"}
    result = build_result(scenario=scenario, records=records, final_weights={"blue": 100, "green": 0}, fault_onsets=[],
                          traffic_report=TRAFFIC, wall_seconds=100)
    assert result["outcome"] == "rolled_back" and result["behaved_as_expected"], result["reason"]
    assert result["load_test"]["verdict"] == "halt" and result["load_test"]["green"]["knee_rps"] == 48.0
    assert result["load_test"]["blue"]["p95_at_peak_ms"] == 40.0 and result["load_test"]["seconds"]["green"] == 20.1
    assert result["drill_rollback_seconds"] is None


def test_the_load_test_block_of_a_pass_a_run_that_could_not_measure_and_a_stage_that_never_ran():
    from sandbox.result import load_test_block

    passed = {**LOAD_SUMMARY, "verdict": "pass", "reason": "Capacity ok", "verdict_line": "x"}
    assert load_test_block(record("stage_06_load_testing.run_load_test", "success", 1, {"verdict": "PASS", **passed}))["verdict"] == "pass"
    broken = record("stage_06_load_testing.run_load_test", "failed", 1,
                    load_test_failure={"reason": "load test could not measure: target http://127.0.0.1:1 is unreachable"})
    assert load_test_block(broken) == {"verdict": "fail", "reason": "load test could not measure: target http://127.0.0.1:1 is unreachable"}
    assert load_test_block(TaskRecord("stage_06_load_testing.run_load_test", "upstream_failed", None, None)) is None
    assert load_test_block(None) is None


def test_writes_a_drop_writes_fault_explains_do_not_spoil_the_run_but_unexplained_ones_do():
    dropped = {**TRAFFIC, "writes_lost": 4, "writes_lost_injected": 4, "writes_lost_not_injected": 0}
    scenario = {"name": "x", "expect_outcome": "rolled_back", "expect_reason_contains": None}
    explained = build_result(scenario=scenario, records=rolled_back_records(), final_weights={"blue": 100, "green": 0},
                             fault_onsets=[], traffic_report=dropped, wall_seconds=1, first_bad_write_at=999.25)
    assert explained["writes"] == {"acknowledged": 250, "lost": 4, "lost_injected": 4}
    assert explained["behaved_as_expected"] and explained["detection_from_first_bad_write_seconds"] == 0.75
    unexplained = build_result(scenario=scenario, records=rolled_back_records(), final_weights={"blue": 100, "green": 0},
                               fault_onsets=[], traffic_report={**dropped, "writes_lost_not_injected": 1}, wall_seconds=1)
    assert not unexplained["behaved_as_expected"]


SECURITY_SUMMARY = {
    "findings": [{"id": "auth-unauthenticated-access", "severity": "high", "color": "green", "where": "GET /api/admin/users",
                  "evidence": "HTTP 200 with no token"}],
    "blocking": [{"id": "auth-unauthenticated-access", "severity": "high", "color": "green", "where": "GET /api/admin/users",
                  "evidence": "HTTP 200 with no token"}],
    "verdict": "halt", "reason": "Halt before traffic: high auth-unauthenticated-access on green at GET /api/admin/users",
    "worse_than_blue": [], "incomplete": [], "scanners": {"bandit": {"seconds": 2.1, "findings": 38}},
    "counts": {"blue": 0, "green": 1, "code": 38}, "blocking_severity": "high",
}


def test_a_stage_7_halt_is_a_rollback_with_its_security_block():
    halt = {"verdict": "FAIL", "step": "security audit", "decided_at": 1000.0, "traffic_restored_at": None,
            "reason": "Halt at stage 7 (security audit), green never got traffic: high auth-unauthenticated-access"}
    records = [
        record("stage_07_security_audit.judge", "failed", 1, security=SECURITY_SUMMARY),
        record("decide_after_security_audit", "success", 2, "rollback.halt_at_security_audit"),
        record("rollback.halt_at_security_audit", "success", 3, halt),
        record("rollback.flags_to_rails", "success", 4, {"verdict": "PASS", "reason": "flags", "verified_at": 1001.0}),
        record("rollback.route_all_to_blue", "success", 5, {"verdict": "PASS", "reason": "All on blue", "verified_at": 1002.0}),
        record("rollback.verify_blue_serving", "success", 6, {"verdict": "PASS", "reason": "ok", "verified": True}),
    ]
    scenario = {**SCENARIO, "name": "green-insecure", "expect_reason_contains": "Halt at stage 7 (security audit)"}
    result = build_result(scenario=scenario, records=records, final_weights={"blue": 100, "green": 0}, fault_onsets=[],
                          traffic_report=TRAFFIC, wall_seconds=100)
    assert result["outcome"] == "rolled_back" and result["behaved_as_expected"], result["reason"]
    assert result["security"] == SECURITY_SUMMARY
    judge_row = next(row for row in result["stages"] if row["name"] == "stage_07_security_audit.judge")
    assert judge_row["verdict"] == "FAIL" and judge_row["reason"] == SECURITY_SUMMARY["reason"]


def test_the_security_block_of_a_judge_without_summary_and_of_a_stage_that_never_ran():
    from sandbox.result import security_block

    broken = record("stage_07_security_audit.judge", "failed", 1, security_failure={"reason": "no plan"})
    assert security_block(broken) == {"findings": [], "blocking": [], "verdict": "fail", "reason": "no plan"}
    assert security_block(TaskRecord("stage_07_security_audit.judge", "skipped", None, None)) is None
    assert security_block(None) is None


def test_the_load_test_block_keeps_each_colors_stress_recovery_and_bottleneck_hints():
    from sandbox.result import load_test_block

    green = {**LOAD_SUMMARY["green"], "stress": {"failure_mode": "latency", "description": "latency: p95 840 ms at 32 users"},
             "recovered": False, "recovery_seconds": None, "recovery": {"description": "not recovered after 6 s"},
             "bottlenecks": {"hints": ["green: CPU 0.97 cores at knee - CPU-bound (single Node process)"]}}
    summary = {**LOAD_SUMMARY, "green": green, "stress_finding": "neither color recovered from stress"}
    block = load_test_block(record("stage_06_load_testing.run_load_test", "failed", 1, load_test=summary))
    assert block["green"]["stress"]["failure_mode"] == "latency" and block["green"]["recovered"] is False
    assert block["green"]["bottlenecks"]["hints"][0].startswith("green: CPU 0.97 cores")
    assert block["stress_finding"] == "neither color recovered from stress"
