"""The stage-6 runner for real: Locust as a subprocess against the test sandbox's green app for
~15 s (three 5 s steps), its reports on disk and its history read into per-step figures; and the
clear failures: an unreachable target, a locustfile that does not load, a non-loopback host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover_kit.load.knee import LoadSLO, find_knee
from cutover_kit.load.profile import LoadProfile, Step
from cutover_kit.load.runner import LoadRunError, run_locust


def profile_for(port: int, **changes) -> LoadProfile:
    fields = {"target": f"http://127.0.0.1:{port}", "steps": (Step(1, 1), Step(2, 2), Step(4, 4)), "step_seconds": 5,
              "max_requests": 2000, **changes}
    return LoadProfile(**fields)


def test_a_step_run_against_green_gives_figures_and_reports(sandbox, tmp_path: Path) -> None:
    result = run_locust(profile_for(sandbox.config.green_port), "green", tmp_path)
    assert [step.users for step in result.steps] == [1, 2, 4]
    assert all(step.requests > 0 and step.rate_rps > 0 and step.p95_ms for step in result.steps)
    # The final report also counts the requests in flight after the last history row (a few).
    in_steps = sum(step.requests for step in result.steps)
    assert in_steps <= result.totals["requests"] <= in_steps * 1.05 + 5
    assert {"GET /api/users/{id}", "POST /api/orders"} <= set(result.totals["endpoints"])
    assert 14 <= result.seconds <= 40
    for name in ("stats_history_csv", "html", "json"):
        assert Path(result.artifacts[name]).stat().st_size > 0, name
    assert json.loads(Path(result.artifacts["json"]).read_text())
    knee = find_knee(result.steps, LoadSLO(max_p95_ms=5000, max_error_ratio=0.05))
    assert knee.knee_rps > 0


def test_the_request_cap_stops_the_run_early(sandbox, tmp_path: Path) -> None:
    result = run_locust(profile_for(sandbox.config.blue_port, steps=(Step(2, 2), Step(4, 4)), step_seconds=20,
                                    max_requests=30), "blue", tmp_path)
    assert result.totals["requests"] <= 40  # users in flight finish their request after the cap
    assert result.seconds < 30


def test_an_unreachable_target_fails_before_locust_starts(tmp_path: Path) -> None:
    with pytest.raises(LoadRunError, match="unreachable"):
        run_locust(profile_for(1), "green", tmp_path)


def test_a_malformed_locustfile_fails_with_locusts_message(sandbox, tmp_path: Path) -> None:
    broken = tmp_path / "broken_locustfile.py"
    broken.write_text("from locust import HttpUser\ndef broken(:\n")
    with pytest.raises(LoadRunError, match="(?s)Locust exited 1: .*SyntaxError"):
        run_locust(profile_for(sandbox.config.green_port), "green", tmp_path, locustfile=broken)


def test_the_locustfile_refuses_a_host_other_than_its_target(sandbox, tmp_path: Path) -> None:
    profile = profile_for(sandbox.config.green_port)
    env_target = LoadProfile(**{**profile.__dict__, "target": f"http://127.0.0.1:{sandbox.config.blue_port}"})
    # The profile sent to Locust says blue while --host says green: the run must not go ahead.
    import cutover_kit.load.runner as runner

    original = runner.LoadProfile.to_env
    try:
        runner.LoadProfile.to_env = lambda self: original(env_target)
        with pytest.raises(LoadRunError):
            run_locust(profile, "green", tmp_path)
    finally:
        runner.LoadProfile.to_env = original
