"""The launcher's stage instances without starting them: the stage-faults file, the ports beside
the live ones, and the Connections that tell the cutover how to start and stop each instance."""

from __future__ import annotations

import pytest

from sandbox.config import SandboxConfig
from sandbox.faults import fault_body
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.stage_instances import stage_fault_bodies


def test_stage_fault_entries_group_by_color_and_refuse_a_bad_entry():
    entries = [{"color": "green", "body": {"max_concurrent": 1}}, {"color": "green", "body": {"added_latency_ms": 5}}]
    assert stage_fault_bodies(entries) == {"green": [{"max_concurrent": 1}, {"added_latency_ms": 5}]}
    with pytest.raises(SandboxError, match="stage-faults entry 0"):
        stage_fault_bodies([{"color": "purple", "body": {}}])


def test_capacity_limit_is_a_fault_body_with_max_concurrent():
    assert fault_body("capacity_limit", None, None, 2) == {"max_concurrent": 2}
    with pytest.raises(ValueError, match="max_concurrent"):
        fault_body("capacity_limit", None, None, None)
    with pytest.raises(ValueError, match="max_concurrent"):
        fault_body("capacity_limit", None, None, 0)


def test_insecure_is_a_fault_body_with_one_known_weakness():
    assert fault_body("insecure", None, None, None, "x_powered_by") == {"weakness": "x_powered_by"}
    with pytest.raises(ValueError, match="weakness"):
        fault_body("insecure", None, None, None, "sql_injection")


def test_stage_ports_sit_beside_the_live_ones_and_move_with_the_environment(tmp_path):
    config = SandboxConfig.from_env({"SANDBOX_DIR": str(tmp_path), "SANDBOX_GREEN_STAGE_PORT": "24184"})
    assert config.stage_port("blue") == 18083 and config.stage_port("green") == 24184
    with pytest.raises(ValueError, match="unknown color"):
        config.stage_port("red")


def test_the_stage_connections_carry_start_and_stop_commands_for_the_launcher(tmp_path):
    from cutover_kit.load.instances import instance_from_connection
    from sandbox.launcher import Sandbox

    sandbox = Sandbox(SandboxConfig.from_env({"SANDBOX_DIR": str(tmp_path)}))
    ports = sandbox.config.ports()
    connection = sandbox._stage_connection("green", ports)
    instance = instance_from_connection("green", "app_green_loadtest", connection["host"], connection["port"], None,
                                        connection["extra"])
    assert instance.url == "http://127.0.0.1:18084"
    assert instance.start_command[-5:] == ("stage-up", "--color", "green", "--database", "{database}")
    assert instance.stop_command[-3:] == ("stage-down", "--color", "green")
    assert instance.command_env["SANDBOX_DIR"] == str(tmp_path) and instance.command_env["SANDBOX_GREEN_STAGE_PORT"] == "18084"
    # Stage 6's bottleneck hints: the instance's own database role and its Prometheus target.
    assert instance.database_role == "cutover_stage_green"
    assert instance.metrics_selector == 'job="stage_apps",color="green"'


def test_each_stage_instance_has_its_own_role_with_a_password_generated_per_up(tmp_path):
    from sandbox.launcher import Sandbox
    from sandbox.launcher.stage_instances import stage_role

    sandbox = Sandbox(SandboxConfig.from_env({"SANDBOX_DIR": str(tmp_path)}))
    state = sandbox._new_state()
    roles = {color: stage_role(state, color) for color in ("blue", "green")}
    assert {color: role["user"] for color, role in roles.items()} == {"blue": "cutover_stage_blue", "green": "cutover_stage_green"}
    assert len({roles["blue"]["password"], roles["green"]["password"], state["postgres"]["password"]}) == 3
    assert sandbox._new_state()["postgres"]["stage_roles"]["green"]["password"] != roles["green"]["password"]
    old = {"postgres": {"user": "cutover", "password": "x"}}
    with pytest.raises(SandboxError, match="no database role for the green stage instance"):
        stage_role(old, "green")


def test_prometheus_waits_for_the_live_targets_only(tmp_path, monkeypatch):
    from sandbox.launcher import Sandbox, prometheus

    def targets(*healths):
        return [{"labels": {"job": job}, "health": health} for job, health in healths]

    answers = iter([
        targets(("apps", "up"), ("apps", "up"), ("haproxy", "up"), ("stage_apps", "down"), ("stage_apps", "down")),
        targets(("apps", "up"), ("apps", "down"), ("haproxy", "up"), ("stage_apps", "up"), ("stage_apps", "up")),
    ])

    class Answer:
        def __init__(self, active):
            self.active = active

        def json(self):
            return {"data": {"activeTargets": self.active}}

    monkeypatch.setattr(prometheus.requests, "get", lambda *args, **kwargs: Answer(next(answers)))
    sandbox = Sandbox(SandboxConfig.from_env({"SANDBOX_DIR": str(tmp_path)}))
    assert sandbox._prometheus_targets_up() is True  # the stage instances are not running: not waited for
    assert sandbox._prometheus_targets_up() is False  # a live app down still is


def test_stage_down_on_a_sandbox_that_never_started_any_is_a_no_op(tmp_path):
    """`down` calls it first, also on a fresh state dir without a run directory or Redis."""
    from sandbox.launcher import Sandbox

    sandbox = Sandbox(SandboxConfig.from_env({"SANDBOX_DIR": str(tmp_path / "fresh"), "SANDBOX_REDIS_PORT": "1025"}))
    assert sandbox.stage_down() == []
