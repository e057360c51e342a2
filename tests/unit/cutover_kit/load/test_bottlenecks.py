"""Bottleneck hints from figures: CPU per app process (CPU-bound at >= 0.85 cores, at the knee
when known), the role's connections (pool-bound when all held are busy, near the server's limit),
the slowest statements, and "unavailable: <why>" for a source that could not be read."""

from __future__ import annotations

import pytest

from cutover_kit.load.bottlenecks import (
    bottleneck_block, connection_figures, connection_hint, cpu_figures, cpu_hint, generator_figures, generator_hint,
    statement_hints, unavailable,
)

SAMPLES = [(100.0, 0.20), (101.0, 0.40), (102.0, 0.97), (103.0, 0.99), (104.0, 0.95), (105.0, 0.60)]


def test_cpu_figures_take_the_peak_and_the_mean_over_the_knee_window():
    figures = cpu_figures(SAMPLES, (101.0, 104.0))
    assert figures == {"peak_cores": 0.99, "mean_cores": 0.685, "samples": 6, "at_knee_cores": 0.97}
    assert cpu_figures(SAMPLES, None)["at_knee_cores"] is None
    assert cpu_figures(SAMPLES, (200.0, 204.0))["at_knee_cores"] is None  # no sample there
    assert cpu_figures([], None) == {"unavailable": "no CPU samples in the run's window"}


def test_a_process_near_one_core_at_the_knee_is_cpu_bound():
    assert cpu_hint("green", cpu_figures(SAMPLES, (101.0, 104.0)), "typescript") == (
        "green: CPU 0.97 cores at knee - CPU-bound (single Node process)")
    assert cpu_hint("blue", {"peak_cores": 0.32, "at_knee_cores": 0.13}, "rails") == (
        "blue: CPU 0.13 cores at knee (peak 0.32) - not CPU-bound (one Puma process: Ruby's GVL runs one thread at a time):"
        " the wait is elsewhere (database, connection pool, I/O)")
    # Without a knee step (the app never saturated) the peak speaks.
    assert cpu_hint("green", {"peak_cores": 0.9, "at_knee_cores": None}, None).startswith("green: CPU 0.90 cores at peak - CPU-bound")
    assert cpu_hint("blue", unavailable("Prometheus unavailable: refused"), "rails") == (
        "blue: CPU unavailable: Prometheus unavailable: refused")


@pytest.mark.parametrize("samples, limits, ending", [
    ([{"held": 20, "active": 19}], (80, None), "19/20 database connections of role r busy at once at peak of the server's 80"
                                                " - every pooled connection busy: requests queue for a connection (pool-bound)"),
    ([{"held": 20, "active": 3}, {"held": 18, "active": 5}], (80, None), "5/20 database connections of role r busy at once at"
                                                                         " peak of the server's 80 - the connection pool is not the limit"),
    ([{"held": 19, "active": 2}], (80, 20), "2/19 database connections of role r busy at once at peak of the server's 20"
                                            " - at the server's connection limit"),
])
def test_connection_hints(samples, limits, ending):
    assert connection_hint("blue", "r", connection_figures(samples, *limits)) == f"blue: {ending}"


def test_connection_figures_without_samples_are_unavailable_and_say_so():
    figures = connection_figures([], 80, None)
    assert connection_hint("green", "r", figures) == (
        "green: database connections unavailable: no pg_stat_activity sample was taken during the run")
    assert connection_figures([{"held": 1, "active": 1}], 80, -1)["role_limit"] is None  # -1: no CONNECTION LIMIT


def test_statement_hints_collapse_whitespace_and_cut_long_text():
    long = "SELECT id,\n       user_id, amount FROM orders WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    lines = statement_hints("green", [{"query": long, "calls": 4120, "mean_ms": 2.3, "total_ms": 9476.0}])
    assert lines == ["green slowest: SELECT id, user_id, amount FROM orders WHERE user_id = $1 ORDER BY created_at DESC, id"
                     " ... 2.30 ms mean x 4120 calls (9.48 s total)"]
    assert statement_hints("blue", []) == ["blue: slowest statements: pg_stat_statements recorded none for the role in the copy"]
    assert statement_hints("blue", unavailable("pg_stat_statements is not installed")) == [
        "blue: slowest statements unavailable: pg_stat_statements is not installed"]


def test_the_block_holds_figures_and_one_hint_line_each():
    block = bottleneck_block("green", "typescript", "cutover_stage_green", cpu_figures(SAMPLES, (101.0, 104.0)),
                             connection_figures([{"held": 14, "active": 1}], 80, None),
                             [{"query": "INSERT INTO orders (user_id) VALUES ($1)", "calls": 343, "mean_ms": 0.41, "total_ms": 140.0}])
    assert block["role"] == "cutover_stage_green" and block["connections"]["peak_held"] == 14
    assert block["hints"] == [
        "green: CPU 0.97 cores at knee - CPU-bound (single Node process)",
        "green: 1/14 database connections of role cutover_stage_green busy at once at peak of the server's 80"
        " - the connection pool is not the limit",
        "green slowest: INSERT INTO orders (user_id) VALUES ($1) 0.41 ms mean x 343 calls (0.14 s total)",
    ]
    missing = bottleneck_block("blue", "rails", None, unavailable("a"), unavailable("b"), unavailable("c"))
    assert missing["hints"] == ["blue: CPU unavailable: a", "blue: database connections unavailable: b",
                                "blue: slowest statements unavailable: c"]


def test_the_load_generators_own_cpu_at_the_peak_rate_says_whether_the_knee_is_the_apps():
    busy = generator_figures(4.0, 3000, 550.0)
    assert busy == {"cpu_seconds": 4.0, "cpu_ms_per_request": 1.333, "peak_rps": 550.0, "cores_at_peak": 0.733}
    assert generator_hint("green", busy) == ("green: the load generator (one Locust process) spent 1.33 ms CPU per request,"
                                             " about 0.73 cores at the peak 550 rps - it may be the limit: the knee is a floor"
                                             " for the app's")
    assert generator_hint("blue", generator_figures(3.0, 3500, 210.0)).endswith("about 0.18 cores at the peak 210 rps - not the limit")
    assert generator_hint("blue", generator_figures(None, 3500, 210.0)) == (
        "blue: load generator CPU unavailable: the load generator's CPU time or request count was not recorded")
    block = bottleneck_block("blue", "rails", "r", unavailable("a"), unavailable("b"), [], generator_figures(3.0, 3500, 210.0))
    assert block["generator"]["cores_at_peak"] == 0.18 and len(block["hints"]) == 4
