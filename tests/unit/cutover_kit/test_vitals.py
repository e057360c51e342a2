"""cutover_kit.vitals: every whole-list rule PASS / FAIL / INCONCLUSIVE / not judged, a limit not
set never judged, and how the verdict folds into the SLO judge's."""

from __future__ import annotations

import dataclasses

import pytest

from cutover_kit.plan import SLOPolicy
from cutover_kit.slo import Judgement, Verdict
from cutover_kit.vitals import MIB, ColorVitals, combine, judge_vitals

MIN_REQUESTS = 20


def vitals(color: str, **figures) -> ColorVitals:
    """A healthy color at 50 % over 10 s: 200 requests, 60 jobs, 4 WebSockets, 200 MiB, 0.1 cores, 0.5 ms statements."""
    base = dict(color=color, window_seconds=10.0, requests=200.0, traffic_share=0.5, jobs_processed=60.0,
                jobs_failed=0.0, websocket_connections=4.0, memory_bytes=200 * MIB, cpu_cores=0.1,
                db_statement_ms=0.5, db_statement_calls=800.0)
    return ColorVitals(**{**base, **figures})


def judged(limit: str, value: float, green: ColorVitals, blue: ColorVitals | None = None):
    policy = SLOPolicy(**{limit: value})
    return judge_vitals(green, blue or vitals("blue"), policy, min_requests=MIN_REQUESTS)


def test_no_limit_set_judges_nothing_whatever_the_figures():
    awful = vitals("green", memory_bytes=9000 * MIB, jobs_processed=0.0, cpu_cores=50.0, db_statement_ms=900.0,
                   requests=10.0, websocket_connections=None)
    result = judge_vitals(awful, vitals("blue"), SLOPolicy(), min_requests=MIN_REQUESTS)
    assert result.verdict is Verdict.PASS and result == type(result)()


@pytest.mark.parametrize("limit, value, bad_green, line", [
    ("max_memory_ratio_vs_blue", 1.5, {"memory_bytes": 412 * MIB}, "green memory 412 MiB > 1.5 x blue 200 MiB"),
    ("min_job_rate_ratio_vs_blue", 0.9, {"jobs_processed": 40.0},
     "green job rate 0.20 jobs/request < 0.9 x blue 0.30 jobs/request"),
    ("min_throughput_ratio_vs_blue", 0.9, {"requests": 150.0},
     "green throughput 0.30 req/s per % of traffic < 0.9 x blue 0.40 req/s per % of traffic"),
    ("min_websocket_ratio_vs_blue", 0.5, {"websocket_connections": 1.0},
     "green WebSockets 0.02 connections per % of traffic < 0.5 x blue 0.08 connections per % of traffic"),
    ("max_cpu_per_request_ratio_vs_blue", 2.0, {"cpu_cores": 0.3},
     "green CPU 15.00 ms CPU/request > 2 x blue 5.00 ms CPU/request"),
    ("max_db_statement_time_ratio_vs_blue", 2.0, {"db_statement_ms": 2.5},
     "green DB statement time 2.500 ms/statement > 2 x blue 0.500 ms/statement"),
])
def test_each_limit_fails_with_the_figures_that_decided_and_passes_within_it(limit, value, bad_green, line):
    failed = judged(limit, value, vitals("green", **bad_green))
    assert failed.verdict is Verdict.FAIL and failed.breaches == (line,)
    healthy = judged(limit, value, vitals("green"))
    assert healthy.verdict is Verdict.PASS and len(healthy.judged) == 1 and healthy.breaches == ()


@pytest.mark.parametrize("limit, missing", [
    ("max_memory_ratio_vs_blue", "memory_bytes"), ("min_job_rate_ratio_vs_blue", "jobs_processed"),
    ("min_websocket_ratio_vs_blue", "websocket_connections"), ("max_cpu_per_request_ratio_vs_blue", "cpu_cores"),
    ("max_db_statement_time_ratio_vs_blue", "db_statement_ms"), ("min_throughput_ratio_vs_blue", "requests"),
])
def test_missing_data_under_a_set_limit_is_inconclusive_never_zero(limit, missing):
    green_missing = judged(limit, 1.5 if limit.startswith("max") else 0.5, vitals("green", **{missing: None}))
    assert green_missing.verdict is Verdict.INCONCLUSIVE and green_missing.doubts[0].startswith("no green ")
    blue_missing = judged(limit, 1.5 if limit.startswith("max") else 0.5, vitals("green"), vitals("blue", **{missing: None}))
    assert blue_missing.verdict is Verdict.INCONCLUSIVE and blue_missing.doubts[0].startswith("no blue ")


def test_a_comparison_that_cannot_exist_is_not_judged_and_says_why():
    # At 100 % green, blue has no traffic: per-request and per-percent figures have nothing to compare with.
    at_100 = judge_vitals(vitals("green", traffic_share=1.0, requests=400.0), vitals("blue", traffic_share=0.0, requests=0.0),
                          SLOPolicy(min_throughput_ratio_vs_blue=0.9, min_job_rate_ratio_vs_blue=0.9,
                                    max_cpu_per_request_ratio_vs_blue=2.0, max_memory_ratio_vs_blue=1.5),
                          min_requests=MIN_REQUESTS)
    assert at_100.verdict is Verdict.PASS
    assert at_100.notes == (
        "throughput not judged: the traffic split is unknown or all on one color",
        "job rate not judged: blue has 0 requests served by its own code (< 20) to compare",
        "CPU not judged: blue has 0 requests (< 20) to compare",
    )
    assert at_100.judged == ("green memory 200 MiB vs blue 200 MiB (<= 1.5 x)",)  # memory needs no traffic


def test_forwarded_requests_are_credited_to_the_color_the_router_sent_them_to():
    # Green forwards 150 of its 200 requests to blue, which counts them too (350 = 200 routed + 150).
    green = vitals("green", forwarded_requests=150.0, jobs_processed=15.0)
    blue = vitals("blue", requests=350.0, jobs_processed=105.0)
    result = judge_vitals(green, blue, SLOPolicy(min_throughput_ratio_vs_blue=0.9, min_job_rate_ratio_vs_blue=0.9),
                          min_requests=MIN_REQUESTS)
    assert result.verdict is Verdict.PASS, result
    assert result.judged == (
        "green throughput 0.40 req/s per % of traffic vs blue 0.40 req/s per % of traffic (>= 0.9 x)",
        "green job rate 0.30 jobs/request vs blue 0.30 jobs/request (>= 0.9 x)",
    )


def test_job_failures_compare_green_s_kindest_reading_with_blue_s_harshest():
    policy = SLOPolicy(max_job_failure_ratio_delta_vs_blue=0.02)
    clear = judge_vitals(vitals("green", jobs_processed=60.0, jobs_failed=30.0), vitals("blue"), policy, min_requests=MIN_REQUESTS)
    assert clear.verdict is Verdict.FAIL
    assert clear.breaches == ("green failed jobs 33.3 % vs blue 0.0 % (> +2.0 pp, 90 green jobs)",)
    noise = judge_vitals(vitals("green", jobs_processed=59.0, jobs_failed=1.0), vitals("blue"), policy, min_requests=MIN_REQUESTS)
    assert noise.verdict is Verdict.PASS  # 1 failure in 60 is not evidence of a 2 pp regression
    no_jobs = judge_vitals(vitals("green", jobs_processed=0.0), vitals("blue", jobs_processed=0.0), policy, min_requests=MIN_REQUESTS)
    assert no_jobs.verdict is Verdict.PASS and no_jobs.notes[0].startswith("job failures not judged: 0 green and 0 blue jobs")
    missing = judge_vitals(vitals("green", jobs_failed=None), vitals("blue"), policy, min_requests=MIN_REQUESTS)
    assert missing.verdict is Verdict.INCONCLUSIVE


def test_a_color_that_ran_no_statements_leaves_statement_time_not_judged():
    result = judged("max_db_statement_time_ratio_vs_blue", 1.5, vitals("green"),
                    vitals("blue", db_statement_ms=None, db_statement_calls=0.0))
    assert result.verdict is Verdict.PASS
    assert result.notes == ("DB statement time not judged: blue ran no statements in the window",)


def test_statement_time_below_the_floor_is_noise_not_a_regression():
    result = judged("max_db_statement_time_ratio_vs_blue", 1.5, vitals("green", db_statement_ms=0.9), vitals("blue", db_statement_ms=0.1))
    assert result.verdict is Verdict.PASS  # 9x, but both under 1 ms


def test_a_limit_at_least_blue_has_nothing_to_fall_short_of_when_blue_has_none():
    result = judged("min_websocket_ratio_vs_blue", 0.9, vitals("green", websocket_connections=0.0), vitals("blue", websocket_connections=0.0))
    assert result.verdict is Verdict.PASS and "blue has none to fall short of" in result.judged[0]


def test_combine_fails_on_any_breach_holds_on_any_doubt_and_a_pass_names_the_figures():
    slo_pass = Judgement(Verdict.PASS, "green 5xx 0.0 % <= 1.0 % over 10 s, 200 requests")
    memory = SLOPolicy(max_memory_ratio_vs_blue=1.5)
    breach = judge_vitals(vitals("green", memory_bytes=412 * MIB), vitals("blue"), memory, min_requests=MIN_REQUESTS)
    failed = combine(slo_pass, breach, "APM, slowest vs blue: GET /api/orders/{id} p95 31 ms vs 12 ms (x2.58)")
    assert failed.verdict is Verdict.FAIL
    assert failed.reason == ("green memory 412 MiB > 1.5 x blue 200 MiB; "
                             "APM, slowest vs blue: GET /api/orders/{id} p95 31 ms vs 12 ms (x2.58)")
    doubt = judge_vitals(vitals("green", memory_bytes=None), vitals("blue"), memory, min_requests=MIN_REQUESTS)
    assert combine(slo_pass, doubt).verdict is Verdict.INCONCLUSIVE
    assert combine(slo_pass, doubt).reason == "no green memory data"
    slo_fail = Judgement(Verdict.FAIL, "green 5xx 3.2 % > 1.0 %", ("green 5xx 3.2 % > 1.0 %",))
    assert combine(slo_fail, doubt).verdict is Verdict.FAIL  # a doubt never excuses a breach
    assert combine(slo_fail, doubt).breaches == ("green 5xx 3.2 % > 1.0 %",)
    held = judge_vitals(vitals("green"), vitals("blue"), memory, min_requests=MIN_REQUESTS)
    assert combine(slo_pass, held).reason == ("green 5xx 0.0 % <= 1.0 % over 10 s, 200 requests; "
                                              "green memory 200 MiB vs blue 200 MiB (<= 1.5 x)")
    slo_unsure = Judgement(Verdict.INCONCLUSIVE, "only 12 green requests in 10 s (< 20)", (), ("only 12 green requests in 10 s (< 20)",))
    assert combine(slo_unsure, held).verdict is Verdict.INCONCLUSIVE


def test_figures_serialise_for_the_event():
    data = vitals("green", latency_seconds={0.5: 0.004, 0.95: 0.02}).to_dict()
    assert data["latency_seconds"] == {"0.5": 0.004, "0.95": 0.02} and data["throughput_rps"] == 20.0
    assert dataclasses.asdict(vitals("blue"))["memory_bytes"] == 200 * MIB
