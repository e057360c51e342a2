"""Stage instances without a sandbox: the Connection's fields read (errors name the field), the
{database} placeholder, readiness polling on a fake clock, and start/stop commands as real
subprocesses (`true`, `false`, a command that never ends)."""

from __future__ import annotations

import sys

import pytest

from cutover_kit.load.instances import (
    StageInstance, StageInstanceError, instance_from_connection, render_command, start_instance, stop_instance, wait_ready,
)

SANDBOX_EXTRA = {"start_command": ["launcher", "stage-up", "--database", "{database}"],
                 "stop_command": ["launcher", "stage-down"], "command_env": {"SANDBOX_DIR": "/tmp/x"}}


def test_a_sandbox_connection_reads_into_an_instance_the_stage_starts():
    instance = instance_from_connection("green", "app_green_loadtest", "127.0.0.1", 24184, None, SANDBOX_EXTRA)
    assert instance.url == "http://127.0.0.1:24184" and instance.started_by_stage
    assert instance.start_command == ("launcher", "stage-up", "--database", "{database}")
    assert instance.command_env == {"SANDBOX_DIR": "/tmp/x"} and instance.ready_path == "/readyz"
    assert "started on the stage's database copy" in instance.describe()


def test_the_database_role_and_metrics_selector_come_from_the_extra_with_a_default_selector():
    instance = instance_from_connection("green", "app_green_loadtest", "127.0.0.1", 1, None,
                                        {**SANDBOX_EXTRA, "database_role": "cutover_stage_green"})
    assert instance.database_role == "cutover_stage_green"
    assert instance.metrics_selector == 'job="stage_apps",color="green"'
    custom = instance_from_connection("blue", "app_blue_loadtest", "127.0.0.1", 1, None, {"metrics_selector": 'job="load",pod="b"'})
    assert custom.database_role is None and custom.metrics_selector == 'job="load",pod="b"'
    assert StageInstance("blue", "http://127.0.0.1:1").metrics_selector == 'job="stage_apps",color="blue"'


def test_without_commands_the_instance_is_pre_provisioned():
    instance = instance_from_connection("blue", "app_blue_loadtest", "localhost", 9000, "https", {})
    assert instance.url == "https://localhost:9000" and not instance.started_by_stage
    assert "pre-provisioned" in instance.describe()


@pytest.mark.parametrize(("host", "port", "extra", "message"), [
    (None, 1, {}, "host and port of the green stage instance are required"),
    ("10.0.0.5", 8080, {}, "is not loopback"),
    ("127.0.0.1", 1, {"start_command": ["x"]}, "give both start_command and stop_command, or neither"),
    ("127.0.0.1", 1, {"start_command": "run me", "stop_command": ["x"]}, "extra.start_command must be a non-empty list"),
    ("127.0.0.1", 1, {"command_env": {"A": 1}}, "extra.command_env must map names to strings"),
    ("127.0.0.1", 1, {"command_timeout_seconds": 0}, "extra.command_timeout_seconds must be a number of seconds"),
    ("127.0.0.1", 1, {"ready_path": "readyz"}, "extra.ready_path must start with /"),
    ("127.0.0.1", 1, {"database_role": "Robert'); DROP"}, "extra.database_role must be a plain lower-case PostgreSQL role"),
    ("127.0.0.1", 1, {"metrics_selector": '{job="x"}'}, "extra.metrics_selector must be label matchers without braces"),
])
def test_a_misdescribed_connection_is_refused_naming_the_field(host, port, extra, message):
    with pytest.raises(StageInstanceError, match=message) as caught:
        instance_from_connection("green", "app_green_loadtest", host, port, None, extra)
    assert "app_green_loadtest" in str(caught.value)


def test_the_database_placeholder_is_filled_and_required():
    assert render_command(["up", "--database", "{database}"], "cutover_stage_copy") == ["up", "--database", "cutover_stage_copy"]
    assert render_command(["down"], None) == ["down"]
    with pytest.raises(StageInstanceError, match="needs the database copy's name"):
        render_command(["up", "{database}"], None)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_readiness_is_polled_until_200_and_times_out_naming_the_last_answer():
    instance = StageInstance("green", "http://127.0.0.1:1", ready_timeout_seconds=2)
    answers = iter([None, 503, 200])
    clock = Clock()
    assert wait_ready(instance, lambda url: next(answers), clock.sleep, clock) == 0.5
    clock = Clock()
    with pytest.raises(StageInstanceError, match="not ready after 2 s: /readyz answered 503"):
        wait_ready(instance, lambda url: 503, clock.sleep, clock)


def test_start_runs_the_command_then_waits_and_stop_runs_its_command():
    instance = StageInstance("blue", "http://127.0.0.1:1", start_command=(sys.executable, "-c", "import sys; assert sys.argv[1] == 'copy'", "{database}"),
                             stop_command=("true",))
    seen = []
    started = start_instance(instance, "copy", probe=lambda url: seen.append(url) or 200)
    assert seen == ["http://127.0.0.1:1/readyz"]
    assert started["started_by_stage"] and started["database"] == "copy" and started["start_seconds"] >= 0
    assert stop_instance(instance) >= 0
    assert stop_instance(StageInstance("blue", "http://127.0.0.1:1")) is None


def test_a_failing_or_hanging_command_fails_with_its_output():
    failing = StageInstance("green", "http://127.0.0.1:1", start_command=(sys.executable, "-c", "import sys; sys.exit('port busy')"),
                            stop_command=("true",))
    with pytest.raises(StageInstanceError, match="start green: exit 1: port busy"):
        start_instance(failing, "copy", probe=lambda url: 200)
    hanging = StageInstance("green", "http://127.0.0.1:1", start_command=(sys.executable, "-c", "import time; time.sleep(30)"),
                            stop_command=("true",), command_timeout_seconds=0.5)
    with pytest.raises(StageInstanceError, match="no answer within 0.5 s"):
        start_instance(hanging, "copy", probe=lambda url: 200)
    missing = StageInstance("green", "http://127.0.0.1:1", start_command=("/nonexistent/launcher",), stop_command=("true",))
    with pytest.raises(StageInstanceError, match="No such file"):
        start_instance(missing, "copy", probe=lambda url: 200)
