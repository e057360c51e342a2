"""The rehearsal runner refuses bad scenarios before anything starts, and turns scenario stages
into router percentages the fault schedule can observe."""

from __future__ import annotations

from cutover_kit.scenario import load_scenario
from sandbox import rehearsal


def test_malformed_scenario_is_refused_before_any_side_effect(tmp_path, monkeypatch, capsys):
    started = []
    monkeypatch.setattr("sandbox.launcher.Sandbox.up", lambda self: started.append(True))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nplan: rehearsal\nfaults:\n  - {color: purple, fault: errors, error_fraction: 0.2, at_stage: traffic_25}\n")
    assert rehearsal.main(["--scenario", str(bad), "--result", str(tmp_path / "r.json")]) == 2
    assert "Scenario refused" in capsys.readouterr().err
    assert started == [] and not (tmp_path / "r.json").exists()


def test_stages_become_observed_router_percentages():
    scenario = load_scenario("green-errors")
    entry = rehearsal.schedule_entry(scenario.faults[0], scenario.plan)
    assert entry == {"color": "green", "fault": "errors", "error_fraction": 0.2, "added_latency_ms": None, "at_green_percent": 25}


def test_scenario_conf_carries_plan_and_overrides():
    scenario = load_scenario("happy")
    assert rehearsal._scenario_conf(scenario)["plan"] == "rehearsal"
