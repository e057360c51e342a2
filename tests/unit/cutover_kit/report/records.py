"""Hand-made records of a rolled-back and a promoted run, for the report's tests (not a test module)."""

from __future__ import annotations

from cutover_kit.report.collect import TaskFacts, build_run_record
from cutover_kit.report.record import Series

T0 = 1_800_000_000.0
PLAN = {"name": "rehearsal", "steps": [5, 25, 50, 100], "bake_seconds": 30, "standby_seconds": 20, "window_seconds": 10,
        "flag_backend": "file", "metric_templates": "sandbox",
        "slo": {"max_error_ratio": 0.01, "max_error_ratio_delta_vs_blue": 0.005, "max_latency_ratio_vs_blue": 1.5,
                "latency_floor_seconds": 0.05}}
HALT_LINE = ("Halt at 25 %: green 5xx 19.8 % > 1.0 % over 10 s, 400 requests (2 breaches in a row)"
             " — runbook: docs/runbooks/rollback.md#error-rate")


def gate_event(step: str, status: str, decided: float, elapsed: float, polls: int, line: str) -> dict:
    return {"status": status, "step": step, "line": line, "verdict": "PASS" if status == "success" else "FAIL",
            "reason": line.split(": ", 1)[1], "decided_at": decided, "elapsed_seconds": elapsed, "polls": polls,
            "measurements": {"window_seconds": 10, "green": {"color": "green", "requests": 400, "errors": 79}}}


def curve(start: float, end: float, value, step: float = 5.0) -> tuple[tuple[float, float], ...]:
    points, t = [], start
    while t <= end:
        points.append((t, value(t)))
        t += step
    return tuple(points)


def series(fault_at: float | None) -> list[Series]:
    share = lambda t: 0.05 if t < T0 + 80 else (0.25 if fault_at is None or t < fault_at + 5 else 0.0)  # noqa: E731
    errors = lambda t: 0.2 if fault_at is not None and fault_at <= t < fault_at + 5 else 0.001  # noqa: E731
    end = T0 + 200
    return [Series("traffic_share", "green", curve(T0, end, share)),
            Series("traffic_share", "blue", curve(T0, end, lambda t: 1 - share(t))),
            Series("error_ratio", "green", curve(T0, end, errors)),
            Series("error_ratio", "blue", curve(T0, end, lambda t: 0.004)),
            # Blue a little slower than green: lines that coincide would hide one color.
            *(Series(q, color, curve(T0, end, lambda t, f=f, k=k: f * k)) for q, f in (("p50", 0.005), ("p95", 0.02), ("p99", 0.04))
              for color, k in (("blue", 1.3), ("green", 1.0)))]


def common_facts() -> list[TaskFacts]:
    return [
        TaskFacts("stage_01_deployment_readiness.validate_plan", "success", PLAN),
        TaskFacts("stage_02_database_preparation.validate_with_great_expectations", "success",
                  {"verdict": "PASS", "reason": "GX: 34 expectations passed in 1.5 s", "expectations": 34, "failed": 0,
                   "seconds": 1.5, "lines": ["PASS orders: amount not null"], "failed_names": []}),
        TaskFacts("stage_08_rollback_procedures.rollback_drill", "success",
                  {"verdict": "PASS", "reason": "Rollback drill (5 % -> 0 % green) in 4.1 ms", "rollback_seconds": 0.0041}),
        TaskFacts("stage_10_traffic_migration.step_5.set_weights", "success", {"verdict": "PASS", "percent": 5, "set_at": T0 + 10}),
        TaskFacts("stage_10_traffic_migration.step_5.slo_gate", "success",
                  gate_result=gate_event("5 %", "success", T0 + 70, 55, 12, "Promote past 5 %: green 5xx 0.0 % <= 1.0 %")),
        TaskFacts("stage_10_traffic_migration.step_5.decide", "success", "stage_10_traffic_migration.step_25.set_flags"),
        TaskFacts("stage_10_traffic_migration.step_25.set_weights", "success", {"verdict": "PASS", "percent": 25, "set_at": T0 + 80}),
    ]


def rolled_back_facts() -> list[TaskFacts]:
    decided = T0 + 97.5
    return common_facts() + [
        TaskFacts("stage_10_traffic_migration.step_25.slo_gate", "failed",
                  gate_result={**gate_event("25 %", "failed", decided, 14.5, 4, HALT_LINE),
                               "flags_restored_at": decided + 0.06, "traffic_restored_at": decided + 0.09}),
        TaskFacts("stage_10_traffic_migration.step_50.set_weights", "skipped"),
        TaskFacts("rollback.halt_at_25", "success", {"verdict": "FAIL", "step": "25 %", "reason": HALT_LINE, "decided_at": decided,
                                                     "emergency_stop": None, "flags_restored_at": decided + 0.06,
                                                     "traffic_restored_at": decided + 0.09}),
        TaskFacts("rollback.flags_to_rails", "success", {"verdict": "PASS", "verified_at": decided + 3}),
        TaskFacts("rollback.route_all_to_blue", "success", {"verdict": "PASS", "verified_at": decided + 5}),
        TaskFacts("rollback.verify_blue_serving", "success", {"verdict": "PASS", "verified": True}),
        TaskFacts("verify_data_integrity", "success", {"verdict": "PASS", "reason": "Data intact"}),
        TaskFacts("cutover_verdict", "failed"),  # the verdict fails every path but a promotion: no XCom
    ]


def rolled_back_record(with_series: bool = True):
    return build_run_record(dag_id="cutover", run_id="manual__2027-01-15", started_at=T0, ended_at=T0 + 200,
                            tasks=rolled_back_facts(), series=series(T0 + 85) if with_series else ())


def promoted_record():
    facts = common_facts() + [
        TaskFacts("stage_10_traffic_migration.step_25.slo_gate", "success",
                  gate_result=gate_event("25 %", "success", T0 + 140, 55, 12, "Promote past 25 %: green 5xx 0.1 % <= 1.0 %")),
        TaskFacts("stage_13_full_cutover.standby_watch", "success",
                  gate_result=gate_event("100 % standby", "success", T0 + 190, 25, 6, "Promote past 100 % standby: ok")),
        TaskFacts("stage_13_full_cutover.promote", "success", {"verdict": "PASS", "reason": "Promoted: 100 % green"}),
        TaskFacts("cutover_verdict", "success", {"verdict": "PASS", "outcome": "promoted", "reason": "Promoted: 100 % green"}),
    ]
    return build_run_record(dag_id="cutover", run_id="manual__promoted", started_at=T0, ended_at=T0 + 200, tasks=facts,
                            series=series(None))
