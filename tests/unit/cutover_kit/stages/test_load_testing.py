"""Stage 6's pure pieces: the plan's section read into a Locust profile (green's own code forced)
and a capacity plan, the seeded id ranges from the backup record, the verdict line, the
artifact directory; a plan without the section never passes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cutover_kit.load.capacity import CapacityPlan
from cutover_kit.load.history import SecondFigures, StepFigures
from cutover_kit.load.instances import StageInstance
from cutover_kit.load.knee import LoadSLO, find_knee
from cutover_kit.load.profile import StressPhase
from cutover_kit.plan import load_plan
from cutover_kit.stages import load_testing


def test_the_rehearsal_plans_section_becomes_a_bounded_profile_per_color():
    settings = load_testing.load_settings(load_plan("rehearsal").load_test)
    green = load_testing.profile_for(settings, "green", "http://127.0.0.1:18084", 40000, 200000)
    assert [step.users for step in green.steps] == [2, 4, 8, 16]
    assert green.steps_seconds == 16 and green.max_requests == 8000
    # The stress past the knee and the recovery run in the same Locust run, after the steps.
    assert green.stress == StressPhase(users=32, seconds=4, recovery_users=2, recovery_seconds=6)
    assert green.duration_seconds == 16 + 4 + 6
    assert green.serve == "typescript" and green.to_env()["LOAD_SERVE"] == "typescript"
    assert (green.user_ids, green.order_ids) == (40000, 200000)
    assert load_testing.profile_for(settings, "blue", "http://127.0.0.1:18083", 1, 1).serve == "rails"
    assert load_testing.capacity_plan_of(settings) == CapacityPlan(peak_rps=10, headroom=2, knee_tolerance=0.5,
                                                                   max_latency_ratio_vs_blue=2.0, latency_floor_ms=250)


def test_a_plan_without_a_load_test_section_never_passes():
    with pytest.raises(ValueError, match="no load_test section"):
        load_testing.load_settings(None)


def test_seeded_ids_come_from_the_backups_fingerprints():
    record = {"fingerprints": {"users": {"count": 40000, "max_id": 40002}, "orders": {"count": 200000}}}
    assert load_testing.seeded_ids(record) == (40002, 200000)
    assert load_testing.seeded_ids(None) == (1, 1)


def test_the_verdict_line_names_the_verdict_reason_and_each_colors_figures():
    summary = {"verdict": "halt", "reason": "Halt before traffic: green knee 40 rps < blue 200 rps",
               "blue": {"knee_rps": 200.0, "p95_at_peak_ms": 30.0}, "green": {"knee_rps": 40.0, "p95_at_peak_ms": 210.0}}
    assert load_testing.verdict_line(summary) == (
        "Load test HALT: Halt before traffic: green knee 40 rps < blue 200 rps "
        "(blue knee 200 rps, p95 at peak 30.0 ms; green knee 40 rps, p95 at peak 210.0 ms)")


def test_artifacts_go_under_the_run_id(tmp_path, monkeypatch):
    assert load_testing.artifact_dir_for("manual__2026-12-07T19:00:00+00:00", tmp_path) == tmp_path / "manual__2026-12-07T19_00_00_00_00"
    monkeypatch.setenv(load_testing.ARTIFACT_ENV, str(tmp_path / "env"))
    assert load_testing.artifact_dir_for(None) == tmp_path / "env" / "manual"


# --- stress, recovery and bottleneck hints ------------------------------------------------------

def test_a_plan_without_recovery_users_recovers_at_the_first_steps_load():
    settings = dict(load_plan("rehearsal").load_test)
    settings["stress"] = {"users": 40, "seconds": 5, "recovery_seconds": 8}
    profile = load_testing.profile_for(settings, "blue", "http://127.0.0.1:18083", 1, 1)
    assert profile.stress == StressPhase(users=40, seconds=5, recovery_users=2, recovery_seconds=8)
    settings.pop("stress")
    assert load_testing.profile_for(settings, "blue", "http://127.0.0.1:18083", 1, 1).stress is None


def test_the_cpu_query_reads_the_instances_target_and_its_range_answer_becomes_samples():
    assert load_testing.cpu_query('job="stage_apps",color="green"') == (
        'sum(rate(process_cpu_seconds_total{job="stage_apps",color="green"}[3s]))')
    matrix = [{"metric": {}, "values": [[100, "0.5"], [101, "NaN"], [102, "0.75"]]}]
    assert load_testing.cpu_samples(matrix) == [(100.0, 0.5), (102.0, 0.75)]
    assert load_testing.cpu_samples([]) == []


def test_the_knee_window_is_the_knee_steps_seconds_from_the_historys_first_row():
    run = SimpleNamespace(start_epoch=1000)
    assert load_testing.knee_window(run, SimpleNamespace(step_index=2), 4) == (1008, 1012)
    assert load_testing.knee_window(run, SimpleNamespace(step_index=None), 4) is None
    assert load_testing.knee_window(SimpleNamespace(start_epoch=None), SimpleNamespace(step_index=1), 4) is None


def test_stress_blocks_judge_each_colors_stress_and_recovery():
    slo = LoadSLO(500, 0.01)
    stress = StepFigures(4, 32, 4, 400, 0, 100.0, 0.0, 300.0, 1100.0, 1500.0)
    runs = {"blue": SimpleNamespace(stress=stress, recovery=[SecondFigures(1, 2, 20, 0, 0.0, 100.0), SecondFigures(2, 2, 20, 0, 0.0, 90.0)],
                                    totals={"requests": 3000}),
            "green": SimpleNamespace(stress=None, recovery=[], totals={"requests": 1200})}
    knees = {"blue": find_knee([], slo), "green": find_knee([], slo)}
    blocks = load_testing.stress_blocks_of(runs, knees, slo, 8000)
    assert blocks["blue"]["stress"]["failure_mode"] == "latency" and blocks["blue"]["recovered"] is True
    assert blocks["green"]["stress"]["failure_mode"] == "no data" and blocks["green"]["recovered"] is False
    # The request cap reached before the recovery: not measured (None), and the reason names the field.
    capped = load_testing.stress_blocks_of(runs, knees, slo, 1200)["green"]
    assert capped["recovered"] is None
    assert capped["recovery"]["description"] == ("not measured: the request cap (1200) ended the run before the recovery"
                                                 " phase; raise load_test.max_requests")


def test_hints_whose_sources_fail_are_recorded_as_unavailable_never_raised(monkeypatch):
    from cutover_kit.hooks import prometheus

    def refuse(self, *args, **kwargs):
        raise prometheus.PrometheusUnavailable("Prometheus at http://127.0.0.1:1 did not answer")

    monkeypatch.setattr(prometheus.PrometheusHook, "query_range", refuse)
    run = SimpleNamespace(started_at=100.0, ended_at=130.0, start_epoch=100, steps=[], stress=None, totals={},
                          generator_cpu_seconds=None)
    instance = StageInstance("green", "http://127.0.0.1:1", database_role=None)
    sampler = load_testing.connection_sampler_for(instance, "cutover_stage_copy")
    block = load_testing.bottleneck_hints_for("green", run, SimpleNamespace(step_index=1), instance, "cutover_stage_copy", sampler, 4)
    assert block["hints"] == [
        "green: CPU unavailable: Prometheus at http://127.0.0.1:1 did not answer",
        "green: database connections unavailable: the Connection of the green stage instance names no database_role",
        "green: slowest statements unavailable: the Connection of the green stage instance names no database_role",
        "green: load generator CPU unavailable: the load generator's CPU time or request count was not recorded",
    ]
    pre_provisioned = load_testing.connection_sampler_for(StageInstance("blue", "http://127.0.0.1:1", database_role="r"), None)
    assert pre_provisioned.error == "a pre-provisioned instance: its database is not the stage's copy"


def test_cpu_from_prometheus_becomes_the_cpu_hint(monkeypatch):
    from cutover_kit.hooks import prometheus

    seen = {}

    def answer(self, promql, start, end, step):
        seen.update(promql=promql, start=start, end=end, step=step)
        return [{"metric": {}, "values": [[104, "0.5"], [105, "0.96"], [106, "0.98"], [107, "0.7"]]}]

    monkeypatch.setattr(prometheus.PrometheusHook, "query_range", answer)
    steps = [StepFigures(0, 2, 4, 100, 0, 25.0, 0.0, 5.0, 9.0, 12.0), StepFigures(1, 4, 4, 900, 0, 225.0, 0.0, 5.0, 9.0, 12.0)]
    stress = StepFigures(2, 32, 4, 2000, 0, 500.0, 0.0, 20.0, 40.0, 60.0)
    run = SimpleNamespace(started_at=100.0, ended_at=130.0, start_epoch=100, steps=steps, stress=stress,
                          totals={"requests": 3000}, generator_cpu_seconds=4.5)
    instance = StageInstance("green", "http://127.0.0.1:1")
    block = load_testing.bottleneck_hints_for("green", run, SimpleNamespace(step_index=1), instance, None,
                                      load_testing._NoSampler("none"), 4)
    assert seen == {"promql": 'sum(rate(process_cpu_seconds_total{job="stage_apps",color="green"}[3s]))',
                    "start": 100.0, "end": 130.0, "step": 1}
    # The knee step (index 1 of 4 s steps) is (104, 108]: the sample at 104 belongs to step 0.
    assert block["cpu"]["at_knee_cores"] == 0.88
    assert block["hints"][0] == "green: CPU 0.88 cores at knee - CPU-bound (single Node process)"
    # 1.5 ms of Locust CPU per request, at the stress step's 500 rps: 0.75 cores.
    assert block["generator"] == {"cpu_seconds": 4.5, "cpu_ms_per_request": 1.5, "peak_rps": 500.0, "cores_at_peak": 0.75}
    assert block["hints"][-1] == ("green: the load generator (one Locust process) spent 1.50 ms CPU per request, about 0.75"
                                  " cores at the peak 500 rps - it may be the limit: the knee is a floor for the app's")
