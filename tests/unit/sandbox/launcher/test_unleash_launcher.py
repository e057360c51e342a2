"""The launcher's Unleash checks, which run before anything starts (no server needed)."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from sandbox.config import PORT_SETTINGS, SandboxConfig
from sandbox.launcher import Sandbox, SandboxError


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def config(tmp_path: Path, backend: str, unleash_port: int = 14242) -> SandboxConfig:
    """Ports the OS just handed out as free, so other sandboxes on this machine cannot interfere."""
    ports = dict(zip(PORT_SETTINGS, free_ports(len(PORT_SETTINGS))))
    ports["unleash_port"] = unleash_port
    return SandboxConfig(state_dir=tmp_path / "sbx", flag_backend=backend, **ports)


def test_unleash_runs_only_with_the_unleash_backend(tmp_path):
    assert "unleash" not in Sandbox(config(tmp_path, "file"))._component_names()
    assert Sandbox(config(tmp_path, "unleash"))._component_names() == (
        "postgres", "redis", "unleash", "blue", "green", "haproxy", "prometheus")
    # A running sandbox is described by its state, whatever this shell's SANDBOX_FLAG_BACKEND says.
    assert "unleash" in Sandbox(config(tmp_path, "file"))._component_names({"flag_backend": "unleash"})


def test_without_node_on_path_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no node
    with pytest.raises(SandboxError, match="needs Node.js 20 \\(`node` is not on PATH\\)"):
        Sandbox(config(tmp_path, "unleash"))._unleash_command()


def test_a_node_other_than_20_is_refused(tmp_path, monkeypatch):
    # Node 22 is not installed here; a stand-in `node` that reports v22 exercises the version check.
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v22.11.0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(SandboxError, match=f"needs Node.js 20.x for unleash-server 6.x; {fake} is v22.11.0"):
        Sandbox(config(tmp_path, "unleash"))._unleash_command()


def test_the_command_names_the_state_dir_so_down_can_find_it(tmp_path):
    argv = Sandbox(config(tmp_path, "unleash"))._unleash_command()
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
