"""The runner's bad-input paths without an app: a target that listens but is never asked (the run
fails before any request), and stand-ins for the Python that runs Locust: one without Locust
(Debian's own python3), one that does not exist, one killed by a signal, one that hangs, one that
exits 0 without writing its stats history. Each raises LoadRunError with a reason; none passes."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from cutover_kit.load.profile import LoadProfile, Step
from cutover_kit.load.runner import LoadRunError, run_locust


@pytest.fixture
def listening_target():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def fake_python(tmp_path: Path, body: str) -> str:
    path = tmp_path / "python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def profile(target: str) -> LoadProfile:
    return LoadProfile(target, (Step(1, 1),), 1, 10)


def test_a_python_without_locust_fails_naming_the_missing_module(listening_target, tmp_path):
    system_python = Path("/usr/bin/python3")
    if not system_python.exists():
        pytest.skip("no system python3 to stand for a Python without Locust")
    with pytest.raises(LoadRunError, match="(?s)load green: Locust exited 1: .*No module named locust"):
        run_locust(profile(listening_target), "green", tmp_path, python=str(system_python))


def test_a_python_that_does_not_exist_fails_naming_it(listening_target, tmp_path):
    with pytest.raises(LoadRunError, match="python /nonexistent/python not found"):
        run_locust(profile(listening_target), "green", tmp_path, python="/nonexistent/python")


def test_a_locust_killed_by_a_signal_fails_with_its_exit_status(listening_target, tmp_path):
    python = fake_python(tmp_path, 'echo "Segmentation fault" >&2; kill -9 $$')
    with pytest.raises(LoadRunError, match="(?s)Locust exited -9: Segmentation fault"):
        run_locust(profile(listening_target), "blue", tmp_path, python=python)


def test_a_locust_that_hangs_is_killed_at_the_timeout(listening_target, tmp_path):
    python = fake_python(tmp_path, "exec sleep 30")
    with pytest.raises(LoadRunError, match="Locust did not finish within 0.5s"):
        run_locust(profile(listening_target), "blue", tmp_path, python=python, timeout_seconds=0.5)


def test_a_locust_that_writes_nothing_never_passes(listening_target, tmp_path):
    python = fake_python(tmp_path, "echo started >&2; exit 0")
    with pytest.raises(LoadRunError, match="Locust wrote no stats history"):
        run_locust(profile(listening_target), "green", tmp_path, python=python)


def test_a_missing_locustfile_and_an_odd_color_are_refused_before_anything_runs(listening_target, tmp_path):
    with pytest.raises(LoadRunError, match="locustfile .*nope.py does not exist"):
        run_locust(profile(listening_target), "green", tmp_path, locustfile=tmp_path / "nope.py")
    with pytest.raises(LoadRunError, match="color must be a plain name"):
        run_locust(profile(listening_target), "../green", tmp_path)


def test_an_unreachable_target_fails_before_locust_starts(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(LoadRunError, match=f"target http://127.0.0.1:{port} is unreachable"):
            run_locust(profile(f"http://127.0.0.1:{port}"), "green", tmp_path, python="/nonexistent/python")
