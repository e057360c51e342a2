"""The emulations the gate-quality figures rest on: Prometheus' histogram_quantile and increase(),
the synthetic Prometheus answering the plan's own PromQL, Flagger's and Argo's rules, and a quick
run that fills every cell."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from benchmarks import gate_quality as gq
from cutover_kit.plan import load_plan

INF = math.inf


# --- histogram_quantile, hand-computed ----------------------------------------------------------

def test_quantile_interpolates_linearly_inside_its_bucket():
    buckets = [(0.1, 10), (0.2, 20), (INF, 20)]
    assert gq.histogram_quantile(0.5, buckets) == pytest.approx(0.1)  # rank 10 = the top of the first bucket
    assert gq.histogram_quantile(0.75, buckets) == pytest.approx(0.15)  # rank 15: half-way through (0.1, 0.2]
    assert gq.histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # first bucket starts at 0


def test_quantile_in_the_inf_bucket_answers_the_highest_finite_bound():
    # rank 9.5 of 10 lies above every finite bucket (8): Prometheus answers 0.2, not an extrapolation
    assert gq.histogram_quantile(0.95, [(0.1, 5), (0.2, 8), (INF, 10)]) == 0.2


def test_quantile_undefined_cases_are_nan_or_infinite():
    assert math.isnan(gq.histogram_quantile(0.5, [(0.1, 0), (INF, 0)]))  # no observations
    assert math.isnan(gq.histogram_quantile(0.5, [(0.1, 3), (0.2, 4)]))  # no +Inf bucket
    assert math.isnan(gq.histogram_quantile(0.5, [(INF, 4)]))  # a single bucket
    assert gq.histogram_quantile(-0.1, [(0.1, 1), (INF, 1)]) == -INF
    assert gq.histogram_quantile(1.1, [(0.1, 1), (INF, 1)]) == INF


def test_quantile_sorts_coalesces_and_makes_counts_monotonic():
    # 0.2 counts fewer than 0.1 (scrapes of different le series at different moments): raised to 10
    assert gq.histogram_quantile(0.5, [(INF, 12), (0.2, 8), (0.1, 10)]) == pytest.approx(0.06)
    # the same le twice is added up: (0.1, 4 + 6) then rank 5 of 10 -> 0.05
    assert gq.histogram_quantile(0.5, [(0.1, 4), (0.1, 6), (INF, 10)]) == pytest.approx(0.05)


def test_quantile_with_a_first_bound_at_or_below_zero_answers_that_bound():
    assert gq.histogram_quantile(0.2, [(0.0, 5), (1.0, 10), (INF, 10)]) == 0.0


def test_the_gate_p99_of_forty_requests_in_coarse_buckets():
    # 40 requests, 38 of them <= 0.1 s, 2 in (0.1, 0.15]: p99 = rank 39.6 -> 0.1 + 0.05 * 1.6 / 2
    assert gq.histogram_quantile(0.99, [(0.1, 38), (0.15, 40), (INF, 40)]) == pytest.approx(0.14)


# --- increase(), Prometheus 2.x extrapolation ------------------------------------------------------

def test_increase_with_a_sample_on_each_edge_is_the_plain_difference():
    # [0, 30] with scrapes at 0..30 (the range is closed in Prometheus 2.x): 31 samples, nothing to extrapolate
    assert gq.extrapolated_increase(100, 130, 0, 30, 31, 0.0, 30.0) == pytest.approx(30)


def test_increase_extrapolates_to_both_edges_within_1_1_sample_intervals():
    # evaluated at 30.25 over 30 s: scrapes 1..30 (29 s apart), 0.75 s and 0.25 s to the edges -> x 30/29
    assert gq.extrapolated_increase(101, 130, 1, 30, 30, 0.25, 30.25) == pytest.approx(29 * 30 / 29)


def test_increase_stops_at_the_counters_zero_point():
    # the counter was 0 at the first scrape: no extrapolation before it, only 0.25 s after the last
    assert gq.extrapolated_increase(0, 29, 1, 30, 30, 0.25, 30.25) == pytest.approx(29 * 29.25 / 29)


def test_increase_far_from_an_edge_extrapolates_half_a_sample_interval():
    # first scrape 5 s after the range start (> 1.1 x the 1 s interval): + 0.5 s at the start only
    assert gq.extrapolated_increase(105, 130, 5, 30, 26, 0.0, 30.0) == pytest.approx(25 * 25.5 / 25)


def test_increase_needs_two_samples():
    assert gq.extrapolated_increase(100, 100, 3, 3, 1, 2.5, 3.5) is None


def test_stream_window_selects_the_scrapes_inside_the_closed_range():
    # 10 requests per second since long ago (counter 1000 at second 0), pre = 2 seconds before 0
    counter = 1000 + 10 * (np.arange(40) - 2)
    stream = gq.ColorStream((0.1, INF), counter, np.zeros(40), np.zeros((40, 2)), pre=2)
    assert gq.scrape_span(30.4, 30) == (1, 30)
    assert stream.increase(counter, 30.4, 30) == pytest.approx(300)  # 29 s of counts x 30/29
    assert stream.increase(counter, 30.0, 30) == pytest.approx(300)  # 31 scrapes, exact
    assert stream.increase(counter, 1.5, 2) == pytest.approx(20)  # the gate's first 2 s window


def test_synthetic_stream_counts_add_up():
    rng = np.random.default_rng(1)
    stream = gq.synthesize_color(rng, rate=50, seconds=100, pre=3, error_before=0.0, error_after=0.2,
                                 latency_median=0.05, latency_ratio_after=2.0, onset=50, bounds=gq.RAILS_LATENCY_BUCKETS)
    requests = np.diff(stream.requests)
    assert np.array_equal(requests, np.diff(stream.buckets[:, -1]))  # the +Inf bucket counts every request
    assert np.all(np.diff(stream.buckets, axis=1)[1:] >= 0)  # cumulative le buckets
    errors = np.diff(stream.errors)
    assert errors[3:53].sum() == 0 and errors[53:].sum() > 0  # errors from the onset on
    assert 45 < requests[3:].mean() < 55


# --- the plan's own PromQL, answered --------------------------------------------------------------

def _streams(rng, plan, share=50, rate=200.0, scenario=gq.SCENARIOS[0]):
    return gq.synthesize_step(rng, plan, scenario, share, rate, 0, "apps")


def test_measure_windows_answers_the_queries_measure_color_sends():
    plan = load_plan("default")
    source = gq.SyntheticPrometheus(plan, _streams(np.random.default_rng(2), plan))
    green, blue = gq.measure_windows(source.at(40.3), plan, 30)
    assert green.color == "green" and blue.color == "blue" and green.up is True
    assert 70 * 30 < green.requests < 130 * 30 and 70 * 30 < blue.requests < 130 * 30
    assert green.errors == 0
    assert 0.09 < green.latency_seconds[0.95] < 0.2 and blue.latency_seconds[0.99] > blue.latency_seconds[0.95]


def test_an_unknown_query_is_an_error_not_a_silent_zero():
    plan = load_plan("default")
    source = gq.SyntheticPrometheus(plan, _streams(np.random.default_rng(3), plan)).at(10.5)
    with pytest.raises(ValueError, match="does not know"):
        source.query_optional('sum(rate(something_else_total[30s]))')


def test_no_green_traffic_reads_as_no_latency_data():
    plan = load_plan("rehearsal")
    streams = _streams(np.random.default_rng(4), plan, share=100)
    source = gq.SyntheticPrometheus(plan, streams).at(5.5)
    green, blue = gq.measure_windows(source, plan, 5)
    assert blue.requests == 0 and blue.latency_seconds[0.95] is None  # NaN quantile -> None, as the hook does


if "latency_bounds" in {f.name for f in dataclasses.fields(gq.ColorWindow)}:
    _WindowWithBounds = gq.ColorWindow
else:
    @dataclasses.dataclass(frozen=True)
    class _WindowWithBounds(gq.ColorWindow):  # the ColorWindow of a judge with confidence bounds
        latency_bounds: dict = dataclasses.field(default_factory=dict)


def test_measure_windows_reads_latency_bounds_when_measure_color_cannot(monkeypatch):
    """A judge with quantile_confidence_levels but a measure_color without confidence_z: the bounds
    are the same histogram read at the judge's levels."""
    plan = load_plan("default")
    source = gq.SyntheticPrometheus(plan, _streams(np.random.default_rng(5), plan)).at(40.3)
    monkeypatch.setattr(gq.slo, "quantile_confidence_levels", lambda q, n, z: (q - 0.02, min(q + 0.02, 0.999)),
                        raising=False)
    real = gq.measure_color

    def measure_color_without_bounds(source, color, window, quantiles, metrics):
        window = real(source, color, window, quantiles, metrics)
        return _WindowWithBounds(**{**dataclasses.asdict(window), "latency_bounds": {}})

    monkeypatch.setattr(gq, "measure_color", measure_color_without_bounds)
    green, _ = gq.measure_windows(source, plan, 30)
    low, high = green.latency_bounds[0.95]
    assert low < green.latency_seconds[0.95] < high
    assert low == source.query_optional(plan.metrics.latency_quantile("green", 0.95 - 0.02, 30))


def test_measure_windows_passes_the_plans_confidence_z_to_a_measure_color_that_takes_it(monkeypatch):
    plan = load_plan("default")
    source = gq.SyntheticPrometheus(plan, _streams(np.random.default_rng(7), plan)).at(40.3)
    seen = []

    def measure_color_with_z(source, color, window, quantiles, metrics, confidence_z=None):
        seen.append(confidence_z)
        return gq.ColorWindow(color=color, requests=1.0, errors=0.0)

    monkeypatch.setattr(gq, "measure_color", measure_color_with_z)
    gq.measure_windows(source, plan, 30)
    assert seen == [plan.slo.confidence_z, plan.slo.confidence_z]


# --- the real gate on the synthetic streams -------------------------------------------------------

def test_the_real_gate_halts_gross_errors_within_seconds_and_promotes_a_healthy_step():
    plan = load_plan("rehearsal")
    rng = np.random.default_rng(6)
    faulty = gq.synthesize_step(rng, plan, gq.Scenario("errors 20 %", "miss", 0.2), 100, 1000.0, 0, "apps")
    outcome = gq.run_gate(plan, faulty, None, 0.5)
    assert outcome.decision == gq.HALT and outcome.seconds < 6
    healthy = gq.synthesize_step(rng, plan, gq.SCENARIOS[0], 50, 1000.0, 0, "apps")
    baseline = gq.blue_baseline(rng, plan, gq.SCENARIOS[0], 1000.0, "apps", 0.5)
    outcome = gq.run_gate(plan, healthy, baseline, 0.5)
    assert outcome.decision == gq.PROMOTE and plan.bake_seconds <= outcome.seconds < plan.bake_seconds + 3


# --- Flagger's and Argo's rules ---------------------------------------------------------------------

def test_flagger_promotes_on_the_first_passing_check_and_halts_on_the_tick_after_five_failures():
    assert gq.run_flagger([True]) == gq.Outcome(gq.PROMOTE, 60)
    assert gq.run_flagger([False, False, True]) == gq.Outcome(gq.PROMOTE, 180)
    assert gq.run_flagger([False] * 4 + [True]) == gq.Outcome(gq.PROMOTE, 300)
    assert gq.run_flagger([False] * 5 + [True]) == gq.Outcome(gq.HALT, 360)  # the 6th tick rolls back first
    with pytest.raises(ValueError):
        gq.run_flagger([False] * 3)


def test_argo_aborts_on_the_first_failed_measurement_and_promotes_after_its_count():
    assert gq.run_argo([True] * 5, 5) == gq.Outcome(gq.PROMOTE, 300)
    assert gq.run_argo([True, False, True], 5) == gq.Outcome(gq.HALT, 120)
    assert gq.run_argo([True], 1, phase=0.5) == gq.Outcome(gq.PROMOTE, 60.5)


def _tiny_stream(requests_per_second: int, errors_per_second: int, seconds: int = 130, slow: bool = False):
    """A hand-made color: constant counts each second, every request in the 0.1 (or 0.75) bucket."""
    bounds = (0.1, 0.75, INF)
    t = np.arange(seconds + 1)
    requests = 1000 + requests_per_second * t
    errors = 10 + errors_per_second * t
    fast_share = 0 if slow else 1
    le = np.stack([1000 * fast_share + requests_per_second * t * fast_share, requests, requests], axis=1)
    return gq.ColorStream(bounds, requests, errors, le.astype(float), pre=0)


def test_flagger_check_on_tiny_streams():
    assert gq.flagger_check(_tiny_stream(100, 1), 60.5)  # 99 % success: at the threshold, passes
    assert not gq.flagger_check(_tiny_stream(100, 2), 60.5)  # 98 %
    assert not gq.flagger_check(_tiny_stream(0, 0), 60.5)  # no canary traffic: "no values" fails the check
    assert not gq.flagger_check(_tiny_stream(100, 0, slow=True), 60.5)  # p99 in (0.1, 0.75] -> > 500 ms


def test_argo_measurement_on_tiny_streams():
    assert gq.argo_measurement(_tiny_stream(100, 1), 60.5)
    assert not gq.argo_measurement(_tiny_stream(100, 2), 60.5)
    assert not gq.argo_measurement(_tiny_stream(0, 0), 60.5)  # 0/0 is NaN: the condition is not met
    assert gq.argo_measurement(_tiny_stream(100, 0, slow=True), 60.5)  # no latency metric in Argo's template


# --- statistics and a whole quick run ---------------------------------------------------------------

def test_wilson_interval_of_zero_in_sixty():
    low, high = gq.wilson(0, 60)
    assert low == 0 and high == pytest.approx(0.0602, abs=1e-3)
    low, high = gq.wilson(30, 60)
    assert low < 0.5 < high


def test_a_quick_run_fills_every_cell_deterministically(tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert gq.main(["--quick", "--trials", "2", "--json", str(first)]) == 0
    table = capsys.readouterr().out
    assert "plan default" in table and "plan rehearsal" in table and "FALSE HALT" in table
    cells = json.loads(first.read_text())["cells"]
    assert len(cells) == len(gq.PLANS) * len(gq.SCENARIOS) * len(gq.SHARES) * len(gq.RATES)
    assert {(c["plan"], c["scenario"], c["share"], c["rate"]) for c in cells} == {
        (p, s.name, share, rate) for p in gq.PLANS for s in gq.SCENARIOS for share in gq.SHARES for rate in gq.RATES}
    for cell in cells:
        for tool in ("gate", "flagger", "argo"):
            counts = cell[tool]
            assert counts["trials"] >= 2
            assert counts["promoted"] + counts["halted"] + counts["timed_out"] == counts["trials"]
    # a cell's figures depend only on its seed: rerunning one plan reproduces them
    assert gq.main(["--quick", "--trials", "2", "--plans", "rehearsal", "--json", str(second)]) == 0
    again = {(c["scenario"], c["share"], c["rate"]): c for c in json.loads(second.read_text())["cells"]}
    for cell in cells:
        if cell["plan"] == "rehearsal":
            assert again[(cell["scenario"], cell["share"], cell["rate"])] == cell
