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
    assert entry == {"color": "green", "fault": "errors", "error_fraction": 0.2, "added_latency_ms": None,
                     "max_concurrent": None, "weakness": None, "fraction": None, "at_green_percent": 25}
    corrupt = load_scenario("green-corrupts-writes")
    assert rehearsal.schedule_entry(corrupt.faults[0], corrupt.plan) == {
        "color": "green", "fault": "corrupt_writes", "error_fraction": None, "added_latency_ms": None,
        "max_concurrent": None, "weakness": None, "fraction": 0.5, "at_green_percent": 25}


def test_stage_instance_faults_go_to_the_launchers_file_and_live_ones_to_the_schedule():
    scenario = load_scenario("green-under-capacity")
    assert rehearsal.stage_fault_entries(scenario.faults) == [{"color": "green", "body": {"max_concurrent": 1}},
                                                              {"color": "green", "body": {"added_latency_ms": 100}}]
    assert rehearsal.schedule_entry(scenario.faults[0], scenario.plan)["after_seconds"] == 1
    assert rehearsal.stage_fault_entries(load_scenario("green-errors").faults) == []


def test_scenario_conf_carries_plan_and_overrides():
    scenario = load_scenario("happy")
    assert rehearsal._scenario_conf(scenario)["plan"] == "rehearsal"


def write_scenario(directory, plan_ref: str, overrides: str = "{}"):
    path = directory / "custom.yaml"
    path.write_text(f"""name: custom
description: a scenario beside its own plan file
plan: {plan_ref}
overrides: {overrides}
traffic: {{rps: 20, max_seconds: 900}}
expect: {{outcome: promoted}}
""")
    return path


def test_scenario_with_its_own_plan_file_is_refused_before_any_side_effect(tmp_path, monkeypatch, capsys):
    """The DAG takes plan names only: a custom ./x/rehearsal.yaml would run include/plans/rehearsal.yaml
    while the result recorded the custom plan."""
    from pathlib import Path

    started = []
    monkeypatch.setattr("sandbox.launcher.Sandbox.up", lambda self: started.append(True))
    stock = (Path(rehearsal.airflow_env.REPO_ROOT) / "include" / "plans" / "rehearsal.yaml").read_text()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "rehearsal.yaml").write_text(stock.replace("min_requests: 15", "min_requests: 16"))
    scenario = write_scenario(tmp_path, "./x/rehearsal.yaml")
    assert load_scenario(str(scenario)).plan.min_requests == 16
    assert rehearsal.main(["--scenario", str(scenario), "--result", str(tmp_path / "r.json")]) == 2
    error = capsys.readouterr().err
    assert "Scenario refused: scenario custom: its plan differs from include/plans/rehearsal.yaml" in error
    assert "min_requests 16 vs 15" in error and "bake_seconds" not in error
    assert started == [] and not (tmp_path / "r.json").exists()


def test_scenario_plan_file_equal_to_the_stock_plan_runs_by_name(tmp_path):
    from pathlib import Path

    stock = (Path(rehearsal.airflow_env.REPO_ROOT) / "include" / "plans" / "rehearsal.yaml").read_text()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "rehearsal.yaml").write_text("# a copy with other comments\n" + stock)
    conf = rehearsal._scenario_conf(load_scenario(str(write_scenario(tmp_path, "./x/rehearsal.yaml", "{min_requests: 7}"))))
    assert conf == {"plan": "rehearsal", "min_requests": 7}


def test_the_report_goes_beside_the_result_file(tmp_path):
    from sandbox.rehearsal import report_base_dir

    assert report_base_dir(tmp_path / "report-happy.json") == tmp_path / "report-happy-report"
