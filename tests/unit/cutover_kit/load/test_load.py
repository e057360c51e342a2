"""Stage-6 building blocks on Locust output recorded once from a 25 s step run (2-32 users, 5 s
steps) against the sandbox app of each color: history parsing, knee, capacity judge, chart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cutover_kit.load.capacity import HALT, PASS, CapacityPlan, judge_capacity, load_test_summary
from cutover_kit.load.history import HistoryError, StepFigures, parse_step_figures
from cutover_kit.load.knee import Knee, LoadSLO, find_knee, p95_at_rate
from cutover_kit.load.profile import LoadProfile, ProfileError, Step, parse_steps
from cutover_kit.load.target import TargetError, loopback_base_url

DATA = Path(__file__).parent / "data"


def recorded(color: str) -> list[StepFigures]:
    return parse_step_figures((DATA / f"{color}_stats_history.csv").read_text(), step_seconds=5, step_count=5)


def step(index: int, rate: float, p95: float | None, failures: int = 0, requests: int = 100) -> StepFigures:
    return StepFigures(index, 2 ** index, 5, requests, failures, rate, failures / requests if requests else None, p95, p95, p95)


def knee(rps: float, p95: float = 100.0) -> Knee:
    return Knee(rps, 0, p95, 0.0, True, "test knee")


# --- target and profile -------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://127.0.0.1:18082", "http://127.0.0.1:18082/", "http://localhost:1", "http://[::1]:80",
                                 "http://127.1.2.3:9"])
def test_loopback_targets_are_accepted(url):
    assert loopback_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url, message", [("http://10.0.0.5:80", "not loopback"), ("http://example.com:80", "not loopback"),
                                          ("ftp://127.0.0.1:21", "scheme"), ("http://127.0.0.1", "port"),
                                          ("http://127.0.0.1:80/api", "base URL only"), ("", "must be a URL")])
def test_other_targets_are_refused(url, message):
    with pytest.raises(TargetError, match=message):
        loopback_base_url(url)


def test_profile_round_trips_through_the_environment():
    profile = LoadProfile("http://127.0.0.1:18082", (Step(2, 2), Step(4, 0.5)), 5, 1000, wait_seconds=0.1)
    assert LoadProfile.from_env(profile.to_env()) == profile
    forcing = LoadProfile("http://127.0.0.1:18082", (Step(1, 1),), 5, 10, serve="typescript")
    assert LoadProfile.from_env(forcing.to_env()) == forcing
    assert profile.duration_seconds == 10


@pytest.mark.parametrize("change, field", [({"target": "http://192.168.1.2:80"}, "target"), ({"steps": ()}, "steps"),
                                           ({"steps": (Step(0, 1),)}, r"steps\[0\].users"), ({"step_seconds": 0}, "step_seconds"),
                                           ({"max_requests": 0}, "max_requests"), ({"websocket": "yes"}, "websocket"),
                                           ({"serve": "python"}, "serve")])
def test_profile_refuses_bad_fields_by_name(change, field):
    fields = {"target": "http://127.0.0.1:18082", "steps": (Step(1, 1),), "step_seconds": 5, "max_requests": 10, **change}
    with pytest.raises(ProfileError, match=field):
        LoadProfile(**fields)


def test_steps_parse_and_refuse_garbage():
    assert parse_steps("2:2, 4:0.5,8") == (Step(2, 2.0), Step(4, 0.5), Step(8, 8.0))
    with pytest.raises(ProfileError, match=r"steps\[1\]"):
        parse_steps("2:2,x:1")
    with pytest.raises(ProfileError, match="LOAD_STEPS"):
        LoadProfile.from_env({"LOAD_TARGET_HOST": "http://127.0.0.1:1", "LOAD_STEPS": ""})
    with pytest.raises(ProfileError, match="LOAD_TARGET_HOST"):
        LoadProfile.from_env({})


# --- history ------------------------------------------------------------------------------------

def test_recorded_history_gives_one_figure_set_per_step():
    green = recorded("green")
    assert [s.index for s in green] == [0, 1, 2, 3, 4]
    assert [s.users for s in green] == [2, 4, 8, 16, 32]
    # Counts come from the cumulative counters: they add up to the run's last total.
    assert sum(s.requests for s in green) == 497
    assert green[0].requests == 57 and green[0].rate_rps == pytest.approx(11.4)
    assert (green[2].p50_ms, green[2].p95_ms, green[2].p99_ms) == (370, 610, 700)
    assert all(s.failures == 0 and s.error_ratio == 0 for s in green)


def test_history_counts_failures_per_step():
    header = ("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,"
              "Total Request Count,Total Failure Count\n")
    rows = ["100,0,,Aggregated,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,0,0",
            "101,2,GET,/x,0,0,5,5,5,5,5,5,5,5,5,5,5,10,0",  # per-endpoint rows are ignored
            "102,2,,Aggregated,0,0,5,5,5,5,5,9,9,9,9,9,9,20,1",
            "103,4,,Aggregated,0,0,5,5,5,5,5,50,9,70,9,9,9,30,1",
            "104,4,,Aggregated,0,0,5,5,5,5,5,60,9,80,9,9,9,60,16"]
    first, second = parse_step_figures(header + "\n".join(rows), step_seconds=2, step_count=2)
    assert (first.requests, first.failures, first.error_ratio, first.p95_ms) == (20, 1, 0.05, 9)
    assert (second.requests, second.failures, second.error_ratio, second.p95_ms, second.p99_ms) == (40, 15, 0.375, 60, 80)
    assert second.rate_rps == 20


def test_history_refuses_other_files():
    with pytest.raises(HistoryError, match="missing columns"):
        parse_step_figures("a,b\n1,2\n", 5, 1)
    with pytest.raises(HistoryError, match="no Aggregated row"):
        parse_step_figures((DATA / "green_stats_history.csv").read_text().splitlines()[0] + "\n", 5, 1)


# --- knee ---------------------------------------------------------------------------------------

def test_recorded_knees():
    slo = LoadSLO(max_p95_ms=800, max_error_ratio=0.01)
    blue, green = find_knee(recorded("blue"), slo), find_knee(recorded("green"), slo)
    assert (blue.knee_rps, blue.step_index, blue.p95_ms, blue.saturated) == (24.0, 2, 380, True)
    assert (green.knee_rps, green.step_index, green.p95_ms) == (18.6, 2, 610)
    assert "step 3 at 21.8 rps: p95 950.0 ms > 800 ms" in green.reason
    assert [e["within_slo"] for e in green.evidence] == [True, True, True, False]


def test_knee_stops_at_the_first_breach_even_if_a_later_step_passes():
    found = find_knee([step(0, 10, 100), step(1, 20, 900), step(2, 40, 100)], LoadSLO(500, 0.01))
    assert found.knee_rps == 10 and found.saturated


def test_knee_on_errors_and_unsaturated_and_nothing_within():
    slo = LoadSLO(500, 0.01)
    assert find_knee([step(0, 10, 100), step(1, 20, 100, failures=5)], slo).reason.endswith("errors 5.0% > 1.0%")
    unsaturated = find_knee([step(0, 10, 100), step(1, 20, 120)], slo)
    assert (unsaturated.knee_rps, unsaturated.saturated) == (20, False)
    assert "no knee reached" in unsaturated.reason
    nothing = find_knee([step(0, 10, 900)], slo)
    assert (nothing.knee_rps, nothing.step_index) == (0.0, None) and "no step within the SLO" in nothing.reason
    assert find_knee([step(0, 0, None, requests=0)], slo).reason == "no step served any request"


def test_p95_at_rate_takes_the_lightest_step_reaching_it():
    steps = [step(0, 10, 100), step(1, 20, 200), step(2, 30, 300)]
    assert p95_at_rate(steps, 15) == 200
    assert p95_at_rate(steps, 31) is None


# --- capacity judge -----------------------------------------------------------------------------

PLAN = CapacityPlan(peak_rps=20, headroom=1.5, knee_tolerance=0.10, max_latency_ratio_vs_blue=1.5, latency_floor_ms=50)


def test_capacity_passes_when_every_rule_holds():
    verdict = judge_capacity(knee(40), knee(38), 100, 140, PLAN)
    assert verdict.verdict == PASS and verdict.reason.startswith("Capacity ok: green knee 38 rps")


def test_capacity_halts_on_a_knee_below_blue():
    verdict = judge_capacity(knee(58), knee(41), 100, 100, PLAN)
    assert verdict == judge_capacity(knee(58), knee(41), None, None, PLAN)  # the first failing rule decides
    assert (verdict.verdict, verdict.reason) == (HALT, "Halt before traffic: green knee 41 rps < blue 58 rps - 10% (52.2 rps)")


def test_capacity_halts_below_peak_times_headroom():
    verdict = judge_capacity(knee(25), knee(29), 100, 100, PLAN)
    assert verdict.verdict == HALT and "< peak 20 rps x headroom 1.5 (30 rps)" in verdict.reason


def test_capacity_halts_on_latency_at_peak_but_not_under_the_floor():
    assert "green p95 160 ms at 20 rps > 1.5 x blue's 100 ms" in judge_capacity(knee(40), knee(40), 100, 160, PLAN).reason
    assert judge_capacity(knee(40), knee(40), 10, 45, PLAN).verdict == PASS
    assert "green never reached" in judge_capacity(knee(40), knee(40), 100, None, PLAN).reason
    assert "blue never reached" in judge_capacity(knee(40), knee(40), None, 100, PLAN).reason


@pytest.mark.parametrize("field, value", [("peak_rps", 0), ("headroom", 0.9), ("knee_tolerance", 1), ("latency_floor_ms", -1)])
def test_impossible_capacity_plans_are_refused_by_field(field, value):
    with pytest.raises(ValueError, match=f"capacity.{field}"):
        dataclasses.replace(PLAN, **{field: value})


def test_summary_of_the_recorded_runs():
    steps = {"blue": recorded("blue"), "green": recorded("green")}
    slo = LoadSLO(800, 0.01)
    summary = load_test_summary(steps, {c: find_knee(s, slo) for c, s in steps.items()}, CapacityPlan(10, 1.2))
    assert summary["verdict"] == HALT
    assert summary["reason"] == "Halt before traffic: green knee 18.6 rps < blue 24 rps - 10% (21.6 rps)"
    assert summary["green"]["knee_rps"] == 18.6 and summary["green"]["p95_at_peak_ms"] == 180
    assert summary["blue"]["p95_at_peak_ms"] == 100 and len(summary["blue"]["steps"]) == 5


def test_chart_is_a_png(tmp_path):
    from cutover_kit.load.chart import write_chart

    steps = {"blue": recorded("blue"), "green": recorded("green")}
    knees = {c: find_knee(s, LoadSLO(800, 0.01)) for c, s in steps.items()}
    path = write_chart(steps, knees, tmp_path / "load.png", max_p95_ms=800)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_the_stress_step_is_a_row_of_its_own_never_the_knee(tmp_path):
    from cutover_kit.load.chart import chart_rows, write_chart

    steps = {"blue": recorded("blue")}
    knees = {"blue": find_knee(steps["blue"], LoadSLO(800, 0.01))}
    stress = StepFigures(5, 64, 4, 400, 8, 100.0, 0.02, 300.0, 1200.0, 1500.0)
    rows = chart_rows(steps, knees, {"blue": stress})
    assert rows[-1] == {"color": "blue", "rate_rps": 100.0, "p95_ms": 1200.0, "error_pct": 2.0, "users": 64, "knee": False,
                        "stress": True}
    assert sum(row["stress"] for row in rows) == 1 and len(rows) == len(chart_rows(steps, knees)) + 1
    path = write_chart(steps, knees, tmp_path / "stress.png", 800, {"blue": stress})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
