"""The sandbox as a whole: the start order, stop order, resume, status and Airflow connections.
Each component's start and stop live in its own module, mixed in here."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg2
import redis

from sandbox.config import COLORS, PORT_SETTINGS, SandboxConfig
from sandbox.launcher.alertmanager import Alertmanager
from sandbox.launcher.apps import Apps
from sandbox.launcher.config_files import ConfigFiles
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.haproxy import HAProxy
from sandbox.launcher.postgres import STAGE_ROLES, Postgres
from sandbox.launcher.processes import PROBE_TIMEOUT, ProcessControl, cmdline, http_ok, port_in_use
from sandbox.launcher.prometheus import Prometheus
from sandbox.launcher.redis_server import RedisServer
from sandbox.launcher.sentry import SentryReceiverComponent
from sandbox.launcher.stage_instances import StageInstances
from sandbox.launcher.state import StateFile
from sandbox.launcher.unleash import Unleash
from sandbox.launcher.webhooks import Webhooks

log = logging.getLogger("sandbox")

# blue_worker: blue's Sidekiq process (its jobs); "blue" is its web process (Puma).
# webhooks (the receiver of notifications and Alertmanager's posts) and alertmanager run before
# Prometheus, which holds back a resend for a minute after a failed first attempt to notify.
START_ORDER = ("postgres", "redis", "unleash", "webhooks", "alertmanager", "sentry", "blue_worker", "blue", "green", "haproxy",
               "prometheus")
# Entry points first, the database last: nothing should still be writing when PostgreSQL stops.
STOP_ORDER = tuple(reversed(START_ORDER))
# Started only with SANDBOX_FLAG_BACKEND=unleash; with the file backend nothing about Unleash runs.
OPTIONAL_COMPONENTS = {"unleash": "unleash"}
REQUIRED_TOOLS = {
    "haproxy": "haproxy",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "redis-server": "redis-server",
}


class Sandbox(ProcessControl, StateFile, ConfigFiles, Postgres, RedisServer, Unleash, Apps, StageInstances, HAProxy,
              Prometheus, Webhooks, Alertmanager, SentryReceiverComponent):
    """Python API of the sandbox. ``up()`` and ``down()`` are idempotent."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig.from_env()
        # Popen handles of processes this object started: polling them reaps exited children,
        # which would otherwise linger as zombies that still "exist" for kill(pid, 0).
        self._children: dict[int, subprocess.Popen] = {}
        self._state: dict[str, Any] | None = None
        self._running_as_root = os.geteuid() == 0

    # ----------------------------------------------------------------------------- public API

    def up(self) -> dict[str, Any]:
        """Start everything and wait until each component is ready; return the state."""
        state = self._load_state()
        if state is not None:
            if self._resume_existing(state):
                return state
        self._check_prerequisites()
        self._check_apps_built()  # both apps as bootstrap left them, before any process starts
        started = time.monotonic()
        self._prepare_state_dir()
        self._state = self._new_state()
        self._save_state()
        steps: list[tuple[str, Callable[[], Any]]] = [
            # Both before Prometheus starts (see START_ORDER); each is ready in well under a second.
            ("webhooks", self._start_webhooks), ("alertmanager", self._start_alertmanager),
            # Prometheus first and waited for last: its service discovery hands targets to the
            # scrape manager only after ~5 s, which then overlaps with everything else.
            ("prometheus_spawn", self._spawn_prometheus),
            ("postgres", self._start_postgres),
            # unleash-server migrates its own database for a few seconds: spawned before the data
            # is generated, waited for after, and ready before the apps (their SDKs fetch at start).
            *((("unleash_spawn", self._spawn_unleash),) if self.config.flag_backend == "unleash" else ()),
            ("database", self._bootstrap_database), ("redis", self._start_redis),
            *((("unleash", self._wait_unleash),) if self.config.flag_backend == "unleash" else ()),
            ("flags", self._write_initial_flags),
            ("sentry", self._start_sentry),  # before the apps: their first exception has somewhere to go
            ("apps", self._start_apps),
            ("haproxy", self._start_haproxy), ("prometheus", self._wait_prometheus),
        ]
        timings = {}
        try:
            for name, step in steps:
                step_started = time.monotonic()
                step()
                timings[name] = round(time.monotonic() - step_started, 2)
        except BaseException as error:
            log.error("sandbox up failed (%s); stopping what was started", error)
            self.down()
            raise
        self._state["up_seconds"] = round(time.monotonic() - started, 2)
        self._state["startup_seconds"] = timings
        self._save_state()
        log.info("sandbox up in %.1fs (state %s); connections: eval \"$(python -m sandbox.launcher env)\"",
                 self._state["up_seconds"], self.config.state_dir)
        return self._state

    def down(self) -> list[str]:
        """Stop everything recorded or left behind; return the names of stopped components."""
        state = self._load_state() or {"components": {}}
        stopped = self.stage_down()  # before Redis and PostgreSQL, like the live apps
        for name in STOP_ORDER:
            if self._stop_component(name, state["components"].get(name)):
                stopped.append(name)
        leftovers = self._find_leftovers()
        for pid in leftovers:
            log.warning("killing leftover sandbox process %d: %s", pid, " ".join(cmdline(pid))[:200])
            self._terminate(pid)
        still = self._find_leftovers()
        if still:
            raise SandboxError(f"sandbox processes survived down(): {still}; see {self.config.log_dir}")
        self._forget_state()
        if stopped:
            log.info("sandbox down: stopped %s", ", ".join(stopped))
        return stopped

    def status(self) -> dict[str, bool]:
        """Component -> process alive AND answering its cheap probe."""
        state = self._load_state()
        if state is None:
            return {name: False for name in self._component_names()}
        probes = self._probes(state)
        return {name: self._component_alive(state, name) and self._probe(probes[name])
                for name in self._component_names(state)}

    def connections(self) -> dict[str, dict[str, Any]]:
        """Airflow connections (JSON connection format) for the running sandbox."""
        state = self._require_state()
        host, ports, pg = self.config.host, state["ports"], state["postgres"]
        return {
            "prometheus_default": {"conn_type": "http", "host": host, "port": ports["prometheus_port"]},
            "haproxy_default": {
                "conn_type": "haproxy",
                "extra": {
                    "socket_path": state["haproxy_socket"],
                    "backend": "app",
                    "blue_server": "blue",
                    "green_server": "green",
                    "cohort_map": str(self.config.haproxy_cohort_map),
                    "routing_map": str(self.config.haproxy_routing_map),
                    "frontend_url": f"http://{host}:{ports['router_port']}",
                },
            },
            "postgres_default": {
                "conn_type": "postgres", "host": pg["host"], "port": pg["port"],
                "login": pg["user"], "password": pg["password"], "schema": pg["dbname"],
            },
            "redis_default": {"conn_type": "redis", "host": host, "port": ports["redis_port"]},
            # database_role: the role each live app connects as (the gate's statement time per color).
            "app_blue": {"conn_type": "http", "host": host, "port": ports["blue_port"],
                         "extra": {"database_role": self.app_login("blue")[0]}},
            "app_green": {"conn_type": "http", "host": host, "port": ports["green_port"],
                          "extra": {"database_role": self.app_login("green")[0]}},
            "app_router": {"conn_type": "http", "host": host, "port": ports["router_port"]},
            # Stages 6 and 7: each color's stage instance, started on the stage's database copy by
            # `python -m sandbox.launcher stage-up` (cutover_kit.hooks.stage_instances).
            **{f"app_{color}_loadtest": self._stage_connection(color, ports) for color in COLORS},
            # The flagd file both apps evaluate (flag backend "file"); cutover_kit.hooks.flags.
            "flagd_default": {"conn_type": "flagd", "extra": {"path": str(self.config.flags_file)}},
            **self._unleash_connections(state),
            **self._webhook_connections(ports),
            **self._alertmanager_connection(ports),
            # Each color's structured log lines (cutover_kit.hooks.app_logs): the app's own log file.
            **{f"app_logs_{color}": {"conn_type": "fs", "extra": {"path": str(self._log_path(color))}} for color in COLORS},
            **self._error_tracking_connections(state),
        }

    def _stage_connection(self, color: str, ports: dict[str, int]) -> dict[str, Any]:
        # The launcher's CLI in a child process finds this sandbox through the same variables.
        env = {"SANDBOX_DIR": str(self.config.state_dir),
               **{name: str(ports.get(field, getattr(self.config, field))) for field, (name, _) in PORT_SETTINGS.items()}}
        launcher = [sys.executable, "-m", "sandbox.launcher"]
        return {
            "conn_type": "http", "host": self.config.host, "port": ports.get(f"{color}_stage_port", self.config.stage_port(color)),
            "extra": {
                "start_command": [*launcher, "stage-up", "--color", color, "--database", "{database}"],
                "stop_command": [*launcher, "stage-down", "--color", color],
                "command_env": env,
                "command_cwd": str(self.config.repo_root),
                "command_timeout_seconds": 180,
                # Stage 6's bottleneck hints: the role the instance connects as, its Prometheus target.
                "database_role": STAGE_ROLES[color],
                "metrics_selector": f'job="stage_apps",color="{color}"',
            },
        }

    def dsn(self) -> str:
        """libpq DSN of the `cutover` database (TCP, password auth)."""
        return self._dsn_from(self._require_state())

    def app_pid(self, color: str) -> int | None:
        """PID of the running app of that color, None if it is not running."""
        self.config.app_port(color)  # validates the color
        state = self._load_state()
        if state is None or not self._component_alive(state, color):
            return None
        return int(state["components"][color]["pid"])

    def restart_app(self, color: str, wait_for_router: bool = True) -> int:
        """(Re)start one app, e.g. after a crash fault; wait for /readyz and HAProxy's UP."""
        self.config.app_port(color)
        self._state = self._require_state()
        info = self._state["components"].get(color)
        if info and self._owned(int(info["pid"])):
            self._terminate(int(info["pid"]))
        pid = self._start_app(color)
        if wait_for_router and self._component_alive(self._state, "haproxy") and self._app_can_be_ready(color):
            self._wait_ready(f"haproxy sees {color} UP", self._haproxy_sees_up(color), self._log_path("haproxy"), None)
        return pid

    # ----------------------------------------------------------------------------- up helpers

    def _resume_existing(self, state: dict[str, Any]) -> bool:
        """True if the recorded sandbox is fully up; clean up if fully dead; refuse if partial."""
        names = self._component_names(state)
        alive = {name: self._component_alive(state, name) for name in names}
        if all(alive.values()):
            probes = self._probes(state)
            unready = [name for name in names if not self._probe(probes[name])]
            if unready:
                raise SandboxError(f"sandbox is running but not answering: {', '.join(unready)}; "
                                   f"see logs in {self.config.log_dir} or run down")
            self._state = state
            log.info("sandbox already up (state %s)", self.config.state_dir)
            return True
        if any(alive.values()):
            dead = [name for name, ok in alive.items() if not ok]
            hint = " (restart_app can restart an app)" if set(dead) <= set(COLORS) else ""
            raise SandboxError(f"sandbox is partly running; not running: {', '.join(dead)}{hint}. "
                               f"Run `python -m sandbox.launcher down` first for a fresh start")
        log.info("stale sandbox state found (nothing running); starting fresh")
        self.down()
        return False

    def _component_names(self, state: dict[str, Any] | None = None) -> tuple[str, ...]:
        """Components this sandbox runs, in start order: Unleash only with the unleash flag backend.

        A running sandbox is described by its state (recorded at `up`), so `status` and `down`
        from a shell without SANDBOX_FLAG_BACKEND still see the Unleash server it started.
        """
        backend = (state or {}).get("flag_backend") or self.config.flag_backend
        return tuple(name for name in START_ORDER if OPTIONAL_COMPONENTS.get(name, backend) == backend)

    def _check_prerequisites(self) -> None:
        missing = [f"{tool} (apt package {package})" for tool, package in REQUIRED_TOOLS.items()
                   if shutil.which(tool) is None]
        if missing:
            raise SandboxError(f"missing executables: {', '.join(missing)}")
        self._pg_bindir()  # raises with a clear message
        if self.config.flag_backend == "unleash":
            self._unleash_command()  # raises with a clear message
        ports = {field: port for field, port in self.config.ports().items()
                 if field != "unleash_port" or self.config.flag_backend == "unleash"}
        busy = [f"{PORT_SETTINGS[field][0]}={port}" for field, port in ports.items()
                if port_in_use(self.config.host, port)]
        if busy:
            raise SandboxError(f"ports already in use on {self.config.host}: {', '.join(busy)}; "
                               f"another sandbox may be running (set those variables to move this one)")

    def up_database(self) -> dict[str, Any]:
        """Start PostgreSQL alone (schema, data, SANDBOX_SCHEMA) in a fresh state dir; return the state.

        For database tests and benchmarks that need no router or apps; ``down()`` stops it.
        """
        if self._load_state() is not None:
            self.down()
        self._pg_bindir()  # raises with a clear message
        if port_in_use(self.config.host, self.config.postgres_port):
            raise SandboxError(f"port {self.config.postgres_port} already in use on {self.config.host}")
        self._prepare_state_dir()
        self._state = self._new_state()
        self._save_state()
        try:
            self._start_postgres()
            self._bootstrap_database()
        except BaseException:
            self.down()
            raise
        return self._state

    def _stop_component(self, name: str, info: dict[str, Any] | None) -> bool:
        if name == "postgres":
            return self._stop_postgres(info)
        pids = {int(info["pid"])} if info else set()
        pidfile = self.config.run_dir / f"{name}.pid"
        if pidfile.exists():
            try:
                pids.add(int(pidfile.read_text().split()[0]))
            except (ValueError, IndexError):
                pass
        stopped = False
        for pid in pids:
            if self._owned(pid):
                self._terminate(pid)
                stopped = True
        pidfile.unlink(missing_ok=True)
        return stopped

    # ----------------------------------------------------------------------------- probes

    def _probes(self, state: dict[str, Any]) -> dict[str, Callable[[], Any]]:
        cfg, ports = self.config, state["ports"]
        return {
            "postgres": lambda: psycopg2.connect(self._dsn_from(state), connect_timeout=1).close() or True,
            "redis": lambda: redis.Redis(host=cfg.host, port=ports["redis_port"], socket_timeout=PROBE_TIMEOUT).ping(),
            "blue": lambda: http_ok(f"http://{cfg.host}:{ports['blue_port']}/healthz"),
            "green": lambda: http_ok(f"http://{cfg.host}:{ports['green_port']}/healthz"),
            "blue_worker": lambda: self._blue_worker_heartbeat(ports["redis_port"]),
            "haproxy": lambda: http_ok(f"http://{cfg.host}:{ports['haproxy_exporter_port']}/metrics", timeout=2),
            "prometheus": lambda: http_ok(f"http://{cfg.host}:{ports['prometheus_port']}/-/healthy"),
            "unleash": lambda: http_ok(f"http://{cfg.host}:{ports['unleash_port']}/health"),
            "webhooks": lambda: http_ok(f"http://{cfg.host}:{ports['webhooks_port']}/healthz"),
            "alertmanager": lambda: http_ok(f"http://{cfg.host}:{ports['alertmanager_port']}/-/ready"),
            "sentry": lambda: http_ok(f"http://{cfg.host}:{ports.get('sentry_port', cfg.sentry_port)}/healthz"),
        }

    @staticmethod
    def _probe(probe: Callable[[], Any]) -> bool:
        try:
            return bool(probe())
        except Exception:  # noqa: BLE001 - a failing probe is simply "not ok"
            return False
