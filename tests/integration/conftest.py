"""Real sandbox for the integration tests: up once per module, down after, nothing left behind.

The test sandbox lives in a fresh temporary directory and on the default ports + 1000
(SANDBOX_TEST_PORT_OFFSET), so a developer's own sandbox on the default ports keeps running.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandbox.config import PORT_SETTINGS, SandboxConfig, scratch_config
from sandbox.launcher import Sandbox


def make_test_config() -> SandboxConfig:
    offset = int(os.environ.get("SANDBOX_TEST_PORT_OFFSET", "1000"))
    return scratch_config("cutover-sbx-test-", offset, SANDBOX_READY_TIMEOUT="30")


def config_env(config: SandboxConfig) -> dict[str, str]:
    """Environment that makes `python -m sandbox.launcher` address this config's sandbox."""
    # sandbox.config imports cutover_kit (plugins/): both roots, as the Makefile sets them.
    env = dict(os.environ, SANDBOX_DIR=str(config.state_dir),
               PYTHONPATH=os.pathsep.join([str(config.repo_root), str(config.repo_root / "plugins")]))
    env.update({PORT_SETTINGS[field][0]: str(port) for field, port in config.ports().items()})
    return env


def processes_mentioning(path: Path) -> list[str]:
    """Every live process whose command line contains `path` (except this one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{path}{os.sep}" in argv and state not in ("Z", "X"):
            found.append(f"{entry.name}: {argv[:160]}")
    return found


def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def assert_nothing_left(config: SandboxConfig) -> None:
    leftovers = processes_mentioning(config.state_dir)
    assert leftovers == [], f"processes left after down(): {leftovers}"
    open_ports = {name: port for name, port in config.ports().items() if listening(config.host, port)}
    assert open_ports == {}, f"ports still listening after down(): {open_ports}"


@contextmanager
def running_sandbox(config: SandboxConfig, start: Callable[[Sandbox], None] = Sandbox.up) -> Iterator[Sandbox]:
    """A sandbox started with `start` (whole or database only), always taken down and checked for
    leftovers, its state directory removed."""
    box = Sandbox(config)
    try:
        start(box)
        yield box
    finally:
        box.down()
        assert_nothing_left(config)
        shutil.rmtree(config.state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with running_sandbox(make_test_config()) as box:
        yield box


@pytest.fixture(scope="module")
def postgres_only() -> Iterator[Sandbox]:
    """PostgreSQL alone (no router, apps or Prometheus): legacy schema and 2,000 generated orders.

    The `cutover` database is the pristine template; tests clone it (CREATE DATABASE ... TEMPLATE)
    so each starts from the same state in a fraction of a second.
    """
    config = dataclasses.replace(make_test_config(), schema="legacy", seed_orders=2000)
    with running_sandbox(config, start=Sandbox.up_database) as box:
        yield box


@pytest.fixture(scope="module")
def unleash_sandbox() -> Iterator[Sandbox]:
    """The whole sandbox with SANDBOX_FLAG_BACKEND=unleash: unleash-server 6.x runs beside it."""
    with running_sandbox(dataclasses.replace(make_test_config(), flag_backend="unleash")) as box:
        yield box


@pytest.fixture
def no_leftovers() -> Callable[[SandboxConfig], None]:
    """The leftover check as a fixture (test modules here are not a package, so no imports)."""
    return assert_nothing_left


@pytest.fixture
def sandbox_env(sandbox: Sandbox) -> dict[str, str]:
    """Environment for `python -m sandbox.launcher ...` subprocesses aimed at the test sandbox."""
    return config_env(sandbox.config)


@pytest.fixture
def use_connections(monkeypatch: pytest.MonkeyPatch) -> Callable[[Sandbox], None]:
    """Point Airflow's Connections at a sandbox, as Airflow reads them from AIRFLOW_CONN_<ID>
    variables; undone after the test. Calling it again restores any a test broke."""
    def use(box: Sandbox) -> None:
        for conn_id, connection in box.connections().items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return use
