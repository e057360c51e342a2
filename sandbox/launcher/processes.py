"""Process handling: spawn, wait until ready, tell our processes from others', terminate, and
sweep leftovers. Module-level helpers read /proc and know nothing about the sandbox layout;
:class:`ProcessControl` is mixed into :class:`~sandbox.launcher.lifecycle.Sandbox`."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from sandbox.config import SandboxConfig
from sandbox.launcher.errors import SandboxError

log = logging.getLogger("sandbox")

TERM_GRACE_SECONDS = 5.0
KILL_GRACE_SECONDS = 3.0
PROBE_TIMEOUT = 0.5
# Executables this launcher starts; the leftover sweep only ever touches these, and the Rails
# processes, whose argv (and rewritten title) carry APP_PROCESS_TAG (sandbox.launcher.apps).
OWN_EXECUTABLES = {"postgres", "redis-server", "haproxy", "prometheus", "prometheus-alertmanager", "node"}
APP_PROCESS_TAG = "cutover-sandbox"


def proc_stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after the last ')' is fixed.
    return raw[raw.rindex(")") + 2:].split()


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part for part in raw.decode(errors="replace").split("\0") if part]


def parent_pid(pid: int) -> int | None:
    fields = proc_stat_fields(pid)
    return int(fields[1]) if fields else None


def children_of(pid: int) -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and parent_pid(int(entry.name)) == pid]


def log_tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return "(no log file)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    | {line}" for line in text) or "    | (empty)"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so sockets in TIME_WAIT from a previous run do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def http_ok(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False



class ProcessControl:
    """Spawning and stopping the sandbox's processes; records each one in the state file."""

    config: SandboxConfig
    _children: dict[int, subprocess.Popen]
    _state: dict[str, Any] | None

    def _log_path(self, name: str) -> Path:
        if name == "postgres":
            return self.config.postgres_log_dir / "postgres.log"
        return self.config.log_dir / f"{name}.log"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        logfile = self._log_path(name)
        with open(logfile, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            out.flush()
            # New session: Ctrl-C in the caller's terminal must not kill the sandbox half-way;
            # down() is the only way it stops.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=self.config.repo_root, env=env, start_new_session=True)
        self._children[proc.pid] = proc
        pidfile = self.config.run_dir / f"{name}.pid"
        pidfile.write_text(f"{proc.pid}\n")
        self._record(name, proc.pid, logfile, pidfile)
        return proc.pid

    def _record(self, name: str, pid: int, logfile: Path, pidfile: Path) -> None:
        # Saved before waiting for readiness, so a failed start can still be stopped.
        self._state["components"][name] = {"pid": pid, "log": str(logfile), "pidfile": str(pidfile)}
        self._save_state()

    def _wait_ready(self, what: str, probe: Callable[[], Any], logfile: Path, pid: int | None,
                    timeout: float | None = None) -> None:
        """Until probe() is true; timeout at least the configured ready timeout (apps ask for more)."""
        timeout = max(timeout or 0.0, self.config.ready_timeout_seconds)
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if pid is not None and not self._alive(pid):
                code = self._children[pid].returncode if pid in self._children else "unknown"
                raise SandboxError(f"{what}: process {pid} exited during startup (exit code {code}); "
                                   f"log {logfile}:\n{log_tail(logfile)}")
            try:
                if probe():
                    return
            except Exception as error:  # noqa: BLE001 - any probe failure means "not ready yet"
                last_error = error
            time.sleep(0.1)
        raise SandboxError(f"{what}: not ready after {timeout:g}s "
                           f"(last probe error: {last_error}); log {logfile}:\n{log_tail(logfile)}")

    def _alive(self, pid: int) -> bool:
        if pid in self._children:
            return self._children[pid].poll() is None
        fields = proc_stat_fields(pid)
        return fields is not None and fields[0] not in ("Z", "X")

    @property
    def _needle(self) -> str:
        # Every process we start names a file inside the state dir in its argv. The trailing
        # slash keeps /tmp/sbx1 from matching the processes of a sandbox in /tmp/sbx10.
        return f"{self.config.state_dir}{os.sep}"

    def _owned(self, pid: int) -> bool:
        """Alive and started by this sandbox (guards against a recycled PID)."""
        return self._alive(pid) and self._needle in " ".join(cmdline(pid))

    def _component_alive(self, state: dict[str, Any], name: str) -> bool:
        info = state.get("components", {}).get(name)
        return bool(info) and self._owned(int(info["pid"]))

    def _terminate(self, pid: int) -> None:
        """SIGTERM, wait, then SIGKILL; returns once the process is gone."""
        for sig, grace in ((signal.SIGTERM, TERM_GRACE_SECONDS), (signal.SIGKILL, KILL_GRACE_SECONDS)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not self._alive(pid):
                    self._children.pop(pid, None)
                    return
                time.sleep(0.05)
            if sig == signal.SIGTERM:
                log.warning("process %d ignored SIGTERM for %.0fs; sending SIGKILL", pid, grace)
        raise SandboxError(f"process {pid} survived SIGKILL")

    def _find_leftovers(self) -> list[int]:
        """Processes of ours still running: one of our executables with our state dir in argv."""
        needle = self._needle
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            argv = cmdline(int(entry.name))
            if not argv or needle not in " ".join(argv):
                continue
            executable = Path(argv[0].split()[0]).name
            if executable in OWN_EXECUTABLES or f"{APP_PROCESS_TAG}:" in " ".join(argv):
                if self._alive(int(entry.name)):
                    found.append(int(entry.name))
        return found
