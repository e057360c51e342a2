"""Start and stop the rehearsal sandbox: PostgreSQL, Redis, blue/green apps, HAProxy, Prometheus,
and unleash-server when the flags live in Unleash (SANDBOX_FLAG_BACKEND=unleash).

Everything runs as plain processes on 127.0.0.1 with its files under one state directory
(``SANDBOX_DIR``, default ``<repo>/.sandbox``). ``state.json`` there records PIDs, ports, log
files and the database password (generated at every fresh ``up``, file mode 0600), so a later
process (``python -m sandbox.launcher down``) can stop exactly what was started.

CLI: ``python -m sandbox.launcher up|down|status|env``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from string import Template
from typing import Any

import psycopg2
import psycopg2.extensions
import redis
import requests

from sandbox import datagen
from sandbox.config import COLORS, GREEN_REQUIRED_SCHEMA, PORT_SETTINGS, ConfigError, SandboxConfig
from sandbox.node import NodeError, project_node

log = logging.getLogger("sandbox")

START_ORDER = ("postgres", "redis", "unleash", "blue", "green", "haproxy", "prometheus")
# Entry points first, the database last: nothing should still be writing when PostgreSQL stops.
STOP_ORDER = tuple(reversed(START_ORDER))
# Started only with SANDBOX_FLAG_BACKEND=unleash; with the file backend nothing about Unleash runs.
OPTIONAL_COMPONENTS = {"unleash": "unleash"}
DB_NAME = DB_USER = "cutover"
# unleash-server keeps its own database (and role) on the sandbox PostgreSQL.
UNLEASH_DB_NAME = UNLEASH_DB_USER = "unleash"
# Where the cutover's flags live in Unleash: the project and environment the client token is scoped
# to, and the ones Connection unleash_default names.
UNLEASH_PROJECT = "default"
UNLEASH_ENVIRONMENT = "development"
UNLEASH_NODE_MAJOR = 20  # unleash-server 6.x supports Node 18-20; 7.6+ needs Node 22
STATE_VERSION = 1
MARKER = ".cutover-sandbox"  # only a directory carrying this marker is ever wiped
TERM_GRACE_SECONDS = 5.0
KILL_GRACE_SECONDS = 3.0
PROBE_TIMEOUT = 0.5
# Executables this launcher starts; the leftover sweep only ever touches these.
OWN_EXECUTABLES = {"postgres", "redis-server", "haproxy", "prometheus", "node"}
REQUIRED_TOOLS = {
    "haproxy": "haproxy",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "redis-server": "redis-server",
}


class SandboxError(RuntimeError):
    """The sandbox could not be brought into the requested state; the message says why."""


# --------------------------------------------------------------------------------------------
# Process helpers (module level: they know nothing about the sandbox layout)


def _proc_stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after the last ')' is fixed.
    return raw[raw.rindex(")") + 2:].split()


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part for part in raw.decode(errors="replace").split("\0") if part]


def _parent_pid(pid: int) -> int | None:
    fields = _proc_stat_fields(pid)
    return int(fields[1]) if fields else None


def _children_of(pid: int) -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _parent_pid(int(entry.name)) == pid]


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return "(no log file)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    | {line}" for line in text) or "    | (empty)"


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so sockets in TIME_WAIT from a previous run do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _http_ok(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def haproxy_command(socket_path: Path | str, line: str, timeout: float = 2.0) -> str:
    """One runtime API command (non-interactive mode answers one line, then closes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def haproxy_server_states(socket_path: Path | str, backend: str = "app") -> dict[str, str]:
    """Server name -> status ("UP", "DOWN", "UP 1/2", "MAINT", ...) from `show stat`."""
    lines = haproxy_command(socket_path, "show stat").lstrip("# ").splitlines()
    header = lines[0].split(",")
    states = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
            states[row["svname"]] = row["status"]
    return states


PLUGINS_DIR = Path(__file__).resolve().parent.parent / "plugins"


def _plugins_on_path() -> None:
    if str(PLUGINS_DIR) not in sys.path:
        sys.path.append(str(PLUGINS_DIR))


def _migrations_module() -> Any:
    """cutover_kit.db.migrations, with plugins/ put on sys.path if the caller did not."""
    _plugins_on_path()
    from cutover_kit.db import migrations

    return migrations


def write_rails_flags(path: Path) -> Any:
    """The flag file at the Rails-safe default (every feature served by Rails), verified by read-back."""
    _plugins_on_path()
    from cutover_kit.flags.flagd_file import FlagdFileStore
    from cutover_kit.flags.model import FlagState, apply_flags

    return apply_flags(FlagdFileStore(path), FlagState.rails())


# --------------------------------------------------------------------------------------------
# The sandbox


class Sandbox:
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
        started = time.monotonic()
        self._prepare_state_dir()
        self._state = self._new_state()
        self._save_state()
        steps: list[tuple[str, Callable[[], Any]]] = [
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
            *((color, lambda color=color: self._start_app(color)) for color in COLORS),
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
        stopped = []
        for name in STOP_ORDER:
            if self._stop_component(name, state["components"].get(name)):
                stopped.append(name)
        leftovers = self._find_leftovers()
        for pid in leftovers:
            log.warning("killing leftover sandbox process %d: %s", pid, " ".join(_cmdline(pid))[:200])
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
                    "frontend_url": f"http://{host}:{ports['router_port']}",
                },
            },
            "postgres_default": {
                "conn_type": "postgres", "host": pg["host"], "port": pg["port"],
                "login": pg["user"], "password": pg["password"], "schema": pg["dbname"],
            },
            "redis_default": {"conn_type": "redis", "host": host, "port": ports["redis_port"]},
            "app_blue": {"conn_type": "http", "host": host, "port": ports["blue_port"]},
            "app_green": {"conn_type": "http", "host": host, "port": ports["green_port"]},
            "app_router": {"conn_type": "http", "host": host, "port": ports["router_port"]},
            # The flagd file both apps evaluate (flag backend "file"); cutover_kit.hooks.flags.
            "flagd_default": {"conn_type": "flagd", "extra": {"path": str(self.config.flags_file)}},
            **self._unleash_connections(state),
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
                if _port_in_use(self.config.host, port)]
        if busy:
            raise SandboxError(f"ports already in use on {self.config.host}: {', '.join(busy)}; "
                               f"another sandbox may be running (set those variables to move this one)")

    def _prepare_state_dir(self) -> None:
        """Wipe and recreate the state directory: every fresh up starts from known data."""
        root = self.config.state_dir
        if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
            raise SandboxError(f"refusing to wipe {root}: it is not empty and has no {MARKER} marker; "
                               f"point SANDBOX_DIR at an empty or sandbox-owned directory")
        if root.exists():
            for entry in root.iterdir():
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        for directory in (root, self.config.run_dir, self.config.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        (root / MARKER).write_text("state directory of sandbox.launcher; wiped at every fresh up\n")
        if self._running_as_root:
            # PostgreSQL runs as `postgres` and must traverse into <state>/pg.
            root.chmod(0o755)

    def _new_state(self) -> dict[str, Any]:
        state = {
            "version": STATE_VERSION,
            "state_dir": str(self.config.state_dir),
            "started_at": time.time(),
            "flag_backend": self.config.flag_backend,
            "ports": self.config.ports(),
            "haproxy_socket": str(self.config.haproxy_socket),
            "postgres": {
                "host": self.config.host, "port": self.config.postgres_port,
                "dbname": DB_NAME, "user": DB_USER,
                # Generated per up, never written to a tracked file; state.json is mode 0600.
                "password": secrets.token_urlsafe(24),
                "socket_dir": str(self.config.postgres_socket_dir),
                "superuser": self._pg_os_user(),
            },
            "components": {},
        }
        if self.config.flag_backend == "unleash":
            state["unleash"] = {
                "url": self.config.unleash_url,
                "project": UNLEASH_PROJECT,
                "environment": UNLEASH_ENVIRONMENT,
                # Secrets generated per up, like the database password: only in state.json (0600).
                # Unleash 6 reads a token's scope from its prefix: admin "*:*.", client
                # "<project>:<environment>.".
                "admin_token": f"*:*.{secrets.token_hex(24)}",
                "client_token": f"{UNLEASH_PROJECT}:{UNLEASH_ENVIRONMENT}.{secrets.token_hex(24)}",
                "db_password": secrets.token_urlsafe(24),
                "ui_password": secrets.token_urlsafe(12),
                "session_secret": secrets.token_hex(24),
            }
        return state

    # ----------------------------------------------------------------------------- PostgreSQL

    def _pg_bindir(self) -> Path:
        """PostgreSQL's bin dir: SANDBOX_PG_BINDIR, else where pg_ctl on PATH really lives."""
        candidates = []
        if os.environ.get("SANDBOX_PG_BINDIR"):
            candidates.append(Path(os.environ["SANDBOX_PG_BINDIR"]))
        if shutil.which("pg_ctl"):
            candidates.append(Path(shutil.which("pg_ctl")).resolve().parent)
        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
        for candidate in candidates:
            if all((candidate / tool).exists() for tool in ("initdb", "pg_ctl", "psql", "postgres")):
                return candidate
        raise SandboxError("PostgreSQL binaries (initdb, pg_ctl, psql) not found: install the apt package "
                           "postgresql or set SANDBOX_PG_BINDIR")

    def _pg_os_user(self) -> str:
        """PostgreSQL refuses to run as root, so as root it runs as the `postgres` OS user."""
        if self._running_as_root:
            return "postgres"
        return pwd.getpwuid(os.geteuid()).pw_name

    def _pg_argv(self, tool: str, *args: str) -> list[str]:
        argv = [str(self._pg_bindir() / tool), *args]
        return ["runuser", "-u", "postgres", "--", *argv] if self._running_as_root else argv

    def _pg_run(self, tool: str, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        argv = self._pg_argv(tool, *args)
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                                  cwd=self.config.postgres_dir)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"postgres: {tool} did not finish within {timeout:g}s") from None
        if done.returncode != 0:
            raise SandboxError(f"postgres: {tool} failed (exit {done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()}\n{_tail(self._log_path('postgres'))}")
        return done.stdout

    def _start_postgres(self) -> None:
        cfg = self.config
        for directory in (cfg.postgres_dir, cfg.postgres_socket_dir, cfg.postgres_log_dir):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
        if self._running_as_root:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise SandboxError("running as root but there is no `postgres` OS user to run PostgreSQL "
                                   "(install the apt package postgresql)") from None
            for directory in (cfg.postgres_dir, cfg.postgres_socket_dir, cfg.postgres_log_dir):
                os.chown(directory, entry.pw_uid, entry.pw_gid)
            self._check_postgres_can_write(cfg.postgres_dir)
        self._pg_run("initdb", "-D", str(cfg.postgres_data_dir), "-U", self._state["postgres"]["superuser"],
                     "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
                     "--no-sync", "--no-instructions")
        self._write_postgres_conf()
        logfile = self._log_path("postgres")
        self._pg_run("pg_ctl", "-D", str(cfg.postgres_data_dir), "-l", str(logfile), "-w",
                     "-t", str(int(cfg.ready_timeout_seconds)), "start", timeout=cfg.ready_timeout_seconds + 5)
        pidfile = cfg.postgres_data_dir / "postmaster.pid"
        pid = int(pidfile.read_text().split()[0])
        self._record("postgres", pid, logfile, pidfile)
        self._wait_ready("postgres", self._postgres_accepts_superuser, logfile, pid)

    def _check_postgres_can_write(self, directory: Path) -> None:
        probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(directory)])
        if probe.returncode != 0:
            raise SandboxError(f"the postgres OS user cannot reach {directory}: every parent directory "
                               f"must be world-executable (o+x); set SANDBOX_DIR to such a place")

    def _write_postgres_conf(self) -> None:
        cfg = self.config
        settings = {
            "listen_addresses": f"'{cfg.host}'",
            "port": str(cfg.postgres_port),
            "unix_socket_directories": f"'{cfg.postgres_socket_dir}'",
            "unix_socket_permissions": "0700",  # superuser access only for the OS user running it
            # Two apps x 20 pooled connections, plus checks and the lead's tasks.
            "max_connections": "80",
            "shared_buffers": "64MB",  # small machine: keep memory modest
            # No replicas here: with minimal WAL, the data generator's load into freshly truncated
            # tables writes no WAL (fsync stays on; commits are as durable as in production).
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "max_wal_size": "2GB",  # bulk loads and backfills of ~1M rows without forced checkpoints
            "logging_collector": "off",  # pg_ctl -l already captures the log
            "log_min_messages": "warning",
        }
        lines = ["", "# Added by sandbox.launcher"] + [f"{key} = {value}" for key, value in settings.items()]
        with open(cfg.postgres_data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n".join(lines) + "\n")

    def _postgres_accepts_superuser(self) -> bool:
        self._psql_superuser("SELECT 1;")
        return True

    def _psql_superuser(self, sql: str) -> str:
        """Run SQL as the cluster superuser over the private socket (peer auth, no password)."""
        return self._pg_run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.config.postgres_socket_dir),
                            "-p", str(self.config.postgres_port), "-d", "postgres", stdin=sql)

    def _bootstrap_database(self) -> None:
        """Create the `cutover` role and database, load the legacy schema and generated data as that
        role, then (SANDBOX_SCHEMA=expanded, the default) apply the expand migration and backfill."""
        pg = self._state["postgres"]
        password = pg["password"].replace("'", "''")
        # Through stdin, not argv: the password must not show up in `ps`. CREATEDB: backup
        # verification restores into a scratch database, and the last-resort restore swaps databases.
        self._psql_superuser(f"CREATE ROLE {DB_USER} LOGIN CREATEDB PASSWORD '{password}';\n"
                             f"CREATE DATABASE {DB_NAME} OWNER {DB_USER};\n")
        schema_sql = self.config.repo_root / "include" / "sql" / "bootstrap" / "legacy_schema.sql"
        with psycopg2.connect(self.dsn(), connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute(schema_sql.read_text())
        conn.close()
        report = datagen.generate(self.dsn(), orders=self.config.seed_orders, users=max(1, self.config.seed_orders // 5))
        log.info("postgres ready: database %s seeded with %d users, %d orders, %d line items in %.1fs",
                 DB_NAME, report.users, report.orders, report.line_items, report.seconds)
        if self.config.schema == "expanded":
            migrations = _migrations_module()
            done = migrations.migrate_up(self.dsn(), migrations.EXPAND_VERSION, expected_current=migrations.BASE_VERSION)
            filled = migrations.backfill(self.dsn())
            log.info("schema expanded to %s in %.2fs; backfilled %d rows in %.2fs", done.to_version, done.seconds,
                     filled.rows, filled.seconds)

    def up_database(self) -> dict[str, Any]:
        """Start PostgreSQL alone (schema, data, SANDBOX_SCHEMA) in a fresh state dir; return the state.

        For database tests and benchmarks that need no router or apps; ``down()`` stops it.
        """
        if self._load_state() is not None:
            self.down()
        self._pg_bindir()  # raises with a clear message
        if _port_in_use(self.config.host, self.config.postgres_port):
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

    # ----------------------------------------------------------------------------- other components

    def _start_redis(self) -> None:
        cfg = self.config
        data_dir = cfg.state_dir / "redis"
        data_dir.mkdir(exist_ok=True)
        conf = data_dir / "redis.conf"
        conf.write_text("\n".join([
            f"bind {cfg.host}",
            f"port {cfg.redis_port}",
            "protected-mode yes",
            "daemonize no",  # foreground: the PID we record is redis itself
            'save ""',  # no RDB snapshots and no AOF: the sandbox needs no persistence
            "appendonly no",
            f"dir {data_dir}",
            'logfile ""',
            "maxmemory 64mb",
            # Keep the config path in the process title so down() can tell our redis from others.
            'proc-title-template "{title} {listen-addr} {config-file}"',
        ]) + "\n")
        pid = self._spawn("redis", ["redis-server", str(conf)])
        client = redis.Redis(host=cfg.host, port=cfg.redis_port, socket_timeout=PROBE_TIMEOUT)
        self._wait_ready("redis", client.ping, self._log_path("redis"), pid)
        client.close()

    def _write_initial_flags(self) -> None:
        """File backend: every app starts evaluating the Rails-safe default (stage 3 re-asserts it)."""
        if self.config.flag_backend == "file":
            state = write_rails_flags(self.config.flags_file)
            log.info("flags at the Rails-safe default in %s: %s", self.config.flags_file, state.describe())

    def _start_app(self, color: str) -> int:
        cfg = self.config
        pidfile = cfg.run_dir / f"{color}.pid"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cfg.repo_root), str(PLUGINS_DIR), env.get("PYTHONPATH")]))
        env["SANDBOX_APP_DSN"] = self.dsn()
        env["SANDBOX_FLAG_BACKEND"] = cfg.flag_backend
        env["SANDBOX_FLAGS_FILE"] = str(cfg.flags_file)
        env.update(self._unleash_app_env())
        argv = [sys.executable, "-m", "sandbox.app", "--color", color, "--host", cfg.host,
                "--port", str(cfg.app_port(color)), "--pidfile", str(pidfile)]
        if color == "green":  # green forwards Rails-flagged requests to blue
            argv += ["--rails-url", cfg.app_url("blue")]
        pid = self._spawn(color, argv, env=env)
        # Green needs the expanded schema: on a legacy schema it is alive but (rightly) not ready.
        probe = "/readyz" if self._app_can_be_ready(color) else "/healthz"
        self._wait_ready(f"{color} app", lambda: _http_ok(f"{cfg.app_url(color)}{probe}"), self._log_path(color), pid)
        return pid

    def _app_can_be_ready(self, color: str) -> bool:
        """False for green while the database is below the schema version green requires."""
        if color != "green":
            return True
        with psycopg2.connect(self.dsn(), connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute("SELECT max(version) FROM schema_migrations")
            version = cur.fetchone()[0] or ""
        conn.close()
        return version >= GREEN_REQUIRED_SCHEMA

    def _start_haproxy(self) -> None:
        cfg = self.config
        rendered = self._render("haproxy", cfg.repo_root / "include" / "haproxy" / "haproxy.cfg.tmpl", "haproxy.cfg", {
            "haproxy_socket": cfg.haproxy_socket, "host": cfg.host, "router_port": cfg.router_port,
            "blue_port": cfg.blue_port, "green_port": cfg.green_port,
            "haproxy_exporter_port": cfg.haproxy_exporter_port,
        })
        self._check_config("haproxy", ["haproxy", "-c", "-f", str(rendered)])
        cfg.haproxy_socket.unlink(missing_ok=True)
        # -db: foreground, no master process, so the recorded PID is the one serving traffic.
        pid = self._spawn("haproxy", ["haproxy", "-db", "-f", str(rendered)])
        logfile = self._log_path("haproxy")
        self._wait_ready("haproxy exporter", lambda: _http_ok(f"http://{cfg.host}:{cfg.haproxy_exporter_port}/metrics"),
                         logfile, pid)
        # Until health checks pass HAProxy answers 503 "no server available": wait for both UP
        # (green only once its schema is there; HAProxy checks /readyz).
        for color in filter(self._app_can_be_ready, COLORS):
            self._wait_ready(f"haproxy sees {color} UP", self._haproxy_sees_up(color), logfile, pid)

    def _haproxy_sees_up(self, color: str) -> Callable[[], bool]:
        return lambda: haproxy_server_states(self.config.haproxy_socket).get(color) == "UP"

    def _spawn_prometheus(self) -> None:
        cfg = self.config
        rules_glob = cfg.repo_root / "include" / "prometheus" / "rules" / "*.yml"
        rendered = self._render("prometheus", cfg.repo_root / "include" / "prometheus" / "prometheus.yml.tmpl",
                                "prometheus.yml", {
                                    "rules_glob": rules_glob, "host": cfg.host, "blue_port": cfg.blue_port,
                                    "green_port": cfg.green_port, "haproxy_exporter_port": cfg.haproxy_exporter_port,
                                })
        self._check_config("prometheus", ["promtool", "check", "config", str(rendered)])
        tsdb = cfg.state_dir / "prometheus" / "data"
        self._spawn("prometheus", [
            "prometheus", f"--config.file={rendered}", f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address={cfg.host}:{cfg.prometheus_port}",
            "--storage.tsdb.retention.time=1d",
        ])

    def _wait_prometheus(self) -> None:
        pid = int(self._state["components"]["prometheus"]["pid"])
        logfile = self._log_path("prometheus")
        self._wait_ready("prometheus", lambda: _http_ok(f"{self.config.prometheus_url}/-/ready"), logfile, pid)
        # Gates query right after up: wait for a first successful scrape of every target.
        self._wait_ready("prometheus targets", self._prometheus_targets_up, logfile, pid)

    def _prometheus_targets_up(self) -> bool:
        answer = requests.get(f"{self.config.prometheus_url}/api/v1/targets", timeout=PROBE_TIMEOUT).json()
        targets = answer["data"]["activeTargets"]
        return len(targets) == 3 and all(target["health"] == "up" for target in targets)

    # ----------------------------------------------------------------------------- Unleash

    @property
    def _unleash_dir(self) -> Path:
        """sandbox/unleash: server.js and the node_modules that scripts/bootstrap.sh installs."""
        return self.config.repo_root / "sandbox" / "unleash"

    def _unleash_command(self) -> list[str]:
        """argv that starts unleash-server with the project's Node 20 (sandbox/node.py, never the
        machine's); raises if it or the npm packages are missing."""
        try:
            node = str(project_node(required_major=UNLEASH_NODE_MAJOR))
        except NodeError as error:
            raise SandboxError(f"SANDBOX_FLAG_BACKEND=unleash: {error}") from None
        if not (self._unleash_dir / "node_modules" / "unleash-server" / "package.json").exists():
            raise SandboxError(f"unleash-server is not installed in {self._unleash_dir}/node_modules; run `make bootstrap`")
        # --state-dir: names this sandbox in the command line, so down() and the leftover sweep
        # can tell this node process from anyone else's.
        return [node, str(self._unleash_dir / "server.js"), "--state-dir", str(self.config.state_dir / "unleash")]

    def _spawn_unleash(self) -> None:
        """Create Unleash's role and database on the sandbox PostgreSQL, then start unleash-server."""
        secrets_ = self._state["unleash"]
        password = secrets_["db_password"].replace("'", "''")
        self._psql_superuser(f"CREATE ROLE {UNLEASH_DB_USER} LOGIN PASSWORD '{password}';\n"
                             f"CREATE DATABASE {UNLEASH_DB_NAME} OWNER {UNLEASH_DB_USER};\n")
        (self.config.state_dir / "unleash").mkdir(exist_ok=True)
        # A minimal environment: unleash-server reads many variables (DATABASE_URL, AUTH_TYPE...) and
        # none of the caller's should leak into the sandbox's server. Secrets go through the
        # environment, not argv, so they do not show up in `ps`.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.config.state_dir / "unleash"),
            "NODE_ENV": "production",
            "SANDBOX_UNLEASH_PORT": str(self.config.unleash_port),
            "SANDBOX_UNLEASH_DB_HOST": self.config.host,
            "SANDBOX_UNLEASH_DB_PORT": str(self.config.postgres_port),
            "SANDBOX_UNLEASH_DB_NAME": UNLEASH_DB_NAME,
            "SANDBOX_UNLEASH_DB_USER": UNLEASH_DB_USER,
            "SANDBOX_UNLEASH_DB_PASSWORD": secrets_["db_password"],
            "SANDBOX_UNLEASH_ADMIN_TOKEN": secrets_["admin_token"],
            "SANDBOX_UNLEASH_CLIENT_TOKEN": secrets_["client_token"],
            "SANDBOX_UNLEASH_ADMIN_PASSWORD": secrets_["ui_password"],
            "SANDBOX_UNLEASH_SESSION_SECRET": secrets_["session_secret"],
        }
        self._spawn("unleash", self._unleash_command(), env=env)

    def _wait_unleash(self) -> None:
        pid = int(self._state["components"]["unleash"]["pid"])
        logfile = self._log_path("unleash")
        url = self.config.unleash_url
        self._wait_ready("unleash", lambda: _http_ok(f"{url}/health"), logfile, pid)
        # /health answers before the initial API tokens exist; the apps' SDKs need the client token.
        token = self._state["unleash"]["client_token"]
        self._wait_ready("unleash client token", lambda: requests.get(
            f"{url}/api/client/features", headers={"Authorization": token}, timeout=PROBE_TIMEOUT).status_code == 200,
            logfile, pid)
        log.info("unleash-server ready at %s (project %s, environment %s)", url, UNLEASH_PROJECT, UNLEASH_ENVIRONMENT)

    def _unleash_app_env(self) -> dict[str, str]:
        """What the apps' Unleash SDK needs (nothing with the file backend)."""
        unleash = (self._state or {}).get("unleash")
        if not unleash:
            return {}
        return {"SANDBOX_UNLEASH_URL": unleash["url"], "SANDBOX_UNLEASH_CLIENT_TOKEN": unleash["client_token"],
                # Inside the state dir: wiped at the next up, so no SDK cache outlives its sandbox.
                "SANDBOX_UNLEASH_CACHE_DIR": str(self.config.state_dir / "unleash" / "sdk-cache")}

    def _unleash_connections(self, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Connection unleash_default (admin API: password = admin token), only with Unleash."""
        unleash = state.get("unleash")
        if not unleash:
            return {}
        return {"unleash_default": {
            "conn_type": "http", "host": self.config.host, "port": state["ports"]["unleash_port"],
            "password": unleash["admin_token"],
            "extra": {"project": unleash["project"], "environment": unleash["environment"]},
        }}

    # ----------------------------------------------------------------------------- templates

    def _render(self, component: str, template: Path, name: str, values: dict[str, Any]) -> Path:
        try:
            text = Template(template.read_text()).substitute({key: str(value) for key, value in values.items()})
        except (KeyError, ValueError) as error:
            raise SandboxError(f"{component}: cannot render {template}: bad or unknown placeholder {error}") from None
        directory = self.config.state_dir / component
        directory.mkdir(exist_ok=True)
        target = directory / name
        target.write_text(text)
        return target

    def _check_config(self, component: str, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise SandboxError(f"{component}: configuration check `{' '.join(argv)}` failed:\n"
                               f"{(done.stdout + done.stderr).strip()}")

    # ----------------------------------------------------------------------------- processes

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

    def _wait_ready(self, what: str, probe: Callable[[], Any], logfile: Path, pid: int | None) -> None:
        deadline = time.monotonic() + self.config.ready_timeout_seconds
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if pid is not None and not self._alive(pid):
                code = self._children[pid].returncode if pid in self._children else "unknown"
                raise SandboxError(f"{what}: process {pid} exited during startup (exit code {code}); "
                                   f"log {logfile}:\n{_tail(logfile)}")
            try:
                if probe():
                    return
            except Exception as error:  # noqa: BLE001 - any probe failure means "not ready yet"
                last_error = error
            time.sleep(0.1)
        raise SandboxError(f"{what}: not ready after {self.config.ready_timeout_seconds:g}s "
                           f"(last probe error: {last_error}); log {logfile}:\n{_tail(logfile)}")

    def _alive(self, pid: int) -> bool:
        if pid in self._children:
            return self._children[pid].poll() is None
        fields = _proc_stat_fields(pid)
        return fields is not None and fields[0] not in ("Z", "X")

    @property
    def _needle(self) -> str:
        # Every process we start names a file inside the state dir in its argv. The trailing
        # slash keeps /tmp/sbx1 from matching the processes of a sandbox in /tmp/sbx10.
        return f"{self.config.state_dir}{os.sep}"

    def _owned(self, pid: int) -> bool:
        """Alive and started by this sandbox (guards against a recycled PID)."""
        return self._alive(pid) and self._needle in " ".join(_cmdline(pid))

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

    def _stop_postgres(self, info: dict[str, Any] | None) -> bool:
        pidfile = self.config.postgres_data_dir / "postmaster.pid"
        pid = int(info["pid"]) if info else None
        if pid is None and pidfile.exists():
            pid = int(pidfile.read_text().split()[0])
        if pid is None or not self._owned(pid):
            return False
        backends = _children_of(pid)
        try:
            # -m fast: roll back open transactions and disconnect clients, but shut down cleanly.
            self._pg_run("pg_ctl", "-D", str(self.config.postgres_data_dir), "-m", "fast", "-w", "-t", "15", "stop",
                         timeout=20)
        except SandboxError as error:
            log.warning("pg_ctl stop failed (%s); killing postmaster %d", error, pid)
            self._terminate(pid)
        for child in backends:  # only ever matters if the postmaster had to be killed
            if self._alive(child):
                self._terminate(child)
        return True

    def _find_leftovers(self) -> list[int]:
        """Processes of ours still running: one of our executables with our state dir in argv."""
        needle = self._needle
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            argv = _cmdline(int(entry.name))
            if not argv or needle not in " ".join(argv):
                continue
            executable = Path(argv[0].split()[0]).name
            if executable in OWN_EXECUTABLES or "sandbox.app" in argv:
                if self._alive(int(entry.name)):
                    found.append(int(entry.name))
        return found

    # ----------------------------------------------------------------------------- state file

    def _load_state(self) -> dict[str, Any] | None:
        path = self.config.state_file
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise SandboxError(f"{path} is corrupt ({error}); stop leftovers with down after removing it") from None
        if state.get("version") != STATE_VERSION:
            raise SandboxError(f"{path} has version {state.get('version')}, expected {STATE_VERSION}")
        return state

    def _require_state(self) -> dict[str, Any]:
        state = self._load_state()
        if state is None:
            raise SandboxError(f"sandbox is not up (no {self.config.state_file}); run `python -m sandbox.launcher up`")
        self._state = state
        return state

    def _save_state(self) -> None:
        path = self.config.state_file
        tmp = path.with_suffix(".tmp")
        # 0600 from creation: the file holds the database password.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self._state, out, indent=2, sort_keys=True)
        os.replace(tmp, path)

    def _forget_state(self) -> None:
        self.config.state_file.unlink(missing_ok=True)
        self.config.haproxy_socket.unlink(missing_ok=True)
        self._state = None

    # ----------------------------------------------------------------------------- probes

    def _probes(self, state: dict[str, Any]) -> dict[str, Callable[[], Any]]:
        cfg, ports = self.config, state["ports"]
        return {
            "postgres": lambda: psycopg2.connect(self._dsn_from(state), connect_timeout=1).close() or True,
            "redis": lambda: redis.Redis(host=cfg.host, port=ports["redis_port"], socket_timeout=PROBE_TIMEOUT).ping(),
            "blue": lambda: _http_ok(f"http://{cfg.host}:{ports['blue_port']}/healthz"),
            "green": lambda: _http_ok(f"http://{cfg.host}:{ports['green_port']}/healthz"),
            "haproxy": lambda: _http_ok(f"http://{cfg.host}:{ports['haproxy_exporter_port']}/metrics", timeout=2),
            "prometheus": lambda: _http_ok(f"http://{cfg.host}:{ports['prometheus_port']}/-/healthy"),
            "unleash": lambda: _http_ok(f"http://{cfg.host}:{ports['unleash_port']}/health"),
        }

    @staticmethod
    def _probe(probe: Callable[[], Any]) -> bool:
        try:
            return bool(probe())
        except Exception:  # noqa: BLE001 - a failing probe is simply "not ok"
            return False

    @staticmethod
    def _dsn_from(state: dict[str, Any]) -> str:
        pg = state["postgres"]
        return psycopg2.extensions.make_dsn(host=pg["host"], port=pg["port"], dbname=pg["dbname"],
                                            user=pg["user"], password=pg["password"])


# --------------------------------------------------------------------------------------------
# CLI


def env_lines(connections: dict[str, dict[str, Any]]) -> list[str]:
    """Shell lines exporting each connection as AIRFLOW_CONN_<ID> (Airflow's JSON format)."""
    return [f"export AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(conn, separators=(',', ':')))}"
            for conn_id, conn in connections.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.launcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        sandbox = Sandbox()
        if args.command == "up":
            state = sandbox.up()
            print(json.dumps({"state_dir": state["state_dir"], "up_seconds": state.get("up_seconds"),
                              "ports": state["ports"]}, indent=2))
        elif args.command == "down":
            sandbox.down()
        elif args.command == "status":
            status = sandbox.status()
            print(json.dumps(status, indent=2))
            return 0 if all(status.values()) else 1
        else:
            print("\n".join(env_lines(sandbox.connections())))
    except (SandboxError, ConfigError) as error:
        print(f"sandbox: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
