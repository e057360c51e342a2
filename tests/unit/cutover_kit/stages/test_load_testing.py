"""Stage 6's pure pieces: the plan's section read into a Locust profile (green's own code forced)
and a capacity plan, the seeded id ranges from the backup record, the verdict line, the
artifact directory; a plan without the section never passes."""

from __future__ import annotations

import pytest

from cutover_kit.load.capacity import CapacityPlan
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
