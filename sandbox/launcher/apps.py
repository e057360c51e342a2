"""The blue and green apps and the flag file they evaluate.

Blue is the Rails app (sandbox/apps/rails: Puma for the web, a Sidekiq worker for its jobs),
green the TypeScript app (sandbox/apps/typescript, run by the project's Node). Both start from
the files scripts/bootstrap.sh prepared (gems resolved, dist/ built); nothing is installed here.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg2
import redis
import requests

from sandbox.config import GREEN_REQUIRED_SCHEMA, SandboxConfig
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.plugins_path import plugins_on_path
from sandbox.launcher.processes import APP_PROCESS_TAG, PROBE_TIMEOUT, http_ok
from sandbox.node import NodeError, project_node

log = logging.getLogger("sandbox")

# Rails boots in 5-15 s on this loaded machine (Sidekiq loads the same app); the general
# ready timeout (30 s, for PostgreSQL, HAProxy...) leaves too little room for a slow minute.
APP_READY_TIMEOUT_SECONDS = 120.0
# Puma and Sidekiq rewrite their process title (`puma 5.6.5 (tcp://...) [TAG]`), so their argv
# carries a tag (APP_PROCESS_TAG:role + the state dir): it is how ownership checks and the
# leftover sweep recognise them, before and after the rewrite.
GREEN_NODE_MAJOR = 20  # package.json engines: >=20 <21
# Puma threads of blue: HAProxy's maxconn per server (include/haproxy/haproxy.cfg.tmpl). With the
# app's default 5, sixteen routed requests queue inside Puma and HAProxy's /readyz check (1 s
# timeout) and Prometheus' scrape wait behind them: measured here at 60 rps on the loaded machine,
# blue was marked DOWN ("Layer7 timeout") and 68 of 696 requests got 503; with 16, none.
BLUE_PUMA_THREADS = 16
BLUE_WORKER = "blue_worker"


def write_rails_flags(path: Path) -> Any:
    """The flag file at the Rails-safe default (every feature served by Rails), verified by read-back."""
    plugins_on_path()
    from cutover_kit.flags.flagd_file import FlagdFileStore
    from cutover_kit.flags.model import FlagState, apply_flags

    return apply_flags(FlagdFileStore(path), FlagState.rails())


class Apps:
    config: SandboxConfig
    _state: dict[str, Any] | None

    @property
    def rails_dir(self) -> Path:
        return self.config.repo_root / "sandbox" / "apps" / "rails"

    @property
    def typescript_dir(self) -> Path:
        return self.config.repo_root / "sandbox" / "apps" / "typescript"

    def _write_initial_flags(self) -> None:
        """File backend: every app starts evaluating the Rails-safe default (stage 3 re-asserts it)."""
        if self.config.flag_backend == "file":
            state = write_rails_flags(self.config.flags_file)
            log.info("flags at the Rails-safe default in %s: %s", self.config.flags_file, state.describe())

    def _check_apps_built(self) -> None:
        """Both apps as bootstrap leaves them; a clear error before anything starts."""
        if not (self.typescript_dir / "dist" / "src" / "main.js").is_file():
            raise SandboxError(f"green is not built ({self.typescript_dir}/dist/src/main.js missing); run `make bootstrap`")
        for executable in ("ruby", "bundle"):
            if not any(os.access(Path(d) / executable, os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)):
                raise SandboxError(f"blue needs `{executable}` (Debian packages of sandbox/apps/rails); run `make bootstrap`")
        try:
            project_node(required_major=GREEN_NODE_MAJOR)
        except NodeError as error:
            raise SandboxError(f"green: {error}") from None

    def _process_tag(self, role: str) -> str:
        return f"{APP_PROCESS_TAG}:{role} {self.config.state_dir}{os.sep}"

    def _blue_env(self) -> dict[str, str]:
        cfg, pg = self.config, self._state["postgres"]
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "DATABASE_URL"))}
        env.update({
            # libpq reads PG*: no URL to quote the generated password into, nothing in argv.
            "PGHOST": pg["host"], "PGPORT": str(pg["port"]), "PGDATABASE": pg["dbname"],
            "PGUSER": self.app_login("blue")[0], "PGPASSWORD": self.app_login("blue")[1],
            "REDIS_URL": self.redis_url, "PORT": str(cfg.blue_port), "APP_COLOR": "blue",
            "METRICS_DIR": str(cfg.state_dir / "blue-metrics"), "RAILS_ENV": "production",
            "RAILS_MAX_THREADS": str(BLUE_PUMA_THREADS),
            "RAILS_LOG_TO_STDOUT": "1",
            # The `release` field of every log line (docs/observability.md "Log lines").
            "APP_RELEASE": self._app_release("blue"),
            **self._sentry_env("blue"),
        })
        return env

    @property
    def redis_url(self) -> str:
        return f"redis://{self.config.host}:{self.config.redis_port}/0"

    def _app_argv(self, name: str) -> tuple[list[str], dict[str, str]]:
        cfg = self.config
        if name == "blue":
            return [str(self.rails_dir / "bin" / "web"), "--tag", self._process_tag("blue")], self._blue_env()
        if name == BLUE_WORKER:
            return [str(self.rails_dir / "bin" / "worker"), "--tag", self._process_tag(BLUE_WORKER)], self._blue_env()
        env = dict(os.environ)
        env["SANDBOX_APP_DSN"] = self.app_dsn("green")
        env["SANDBOX_REDIS_URL"] = self.redis_url
        env["SANDBOX_FLAG_BACKEND"] = cfg.flag_backend
        env["SANDBOX_FLAGS_FILE"] = str(cfg.flags_file)
        env["APP_RELEASE"] = self._app_release("green")
        env.update(self._unleash_app_env())
        env.update(self._sentry_env("green"))
        # Green forwards Rails-flagged requests to blue; the pidfile names the state dir in argv.
        argv = [str(project_node(required_major=GREEN_NODE_MAJOR)), str(self.typescript_dir / "dist" / "src" / "main.js"),
                "--color", "green", "--host", cfg.host, "--port", str(cfg.green_port),
                "--rails-url", cfg.app_url("blue"), "--pidfile", str(cfg.run_dir / "green.pid")]
        return argv, env

    def _spawn_app(self, name: str) -> int:
        argv, env = self._app_argv(name)
        return self._spawn(name, argv, env=env)

    def _wait_app(self, name: str, pid: int) -> None:
        cfg = self.config
        if name == BLUE_WORKER:
            probe = self._blue_worker_heartbeat
        else:
            # Green needs the expanded schema: on a legacy schema it is alive but (rightly) not ready.
            path = "/readyz" if self._app_can_be_ready(name) else "/healthz"
            probe = lambda: http_ok(f"{cfg.app_url(name)}{path}")  # noqa: E731
        self._wait_ready(f"{name} app", probe, self._log_path(name), pid, timeout=APP_READY_TIMEOUT_SECONDS)

    def _start_apps(self) -> None:
        """Spawn blue's worker, blue and green at once (Rails' boot is the long pole), then wait."""
        pids = {name: self._spawn_app(name) for name in (BLUE_WORKER, "blue", "green")}
        for name, pid in pids.items():
            self._wait_app(name, pid)

    def _start_app(self, name: str) -> int:
        pid = self._spawn_app(name)
        self._wait_app(name, pid)
        return pid

    def _blue_worker_heartbeat(self, redis_port: int | None = None) -> bool:
        """Sidekiq registers itself in Redis (`processes`) once it has booted and fetches jobs."""
        client = redis.Redis(host=self.config.host, port=redis_port or self.config.redis_port, socket_timeout=PROBE_TIMEOUT)
        try:
            tag = self._process_tag(BLUE_WORKER)
            return any(tag.encode() in (client.hget(key, "info") or b"") for key in client.smembers("processes"))
        finally:
            client.close()

    def app_versions(self) -> dict[str, dict[str, str]]:
        """Per color: the runtime the running app reports (app_info on /metrics) and the version
        of the source it runs (the last commit of its directory, "+changes" if edited since)."""
        plugins_on_path()  # sandbox.result reads cutover_kit
        from sandbox.result import app_runtime, parse_app_info

        versions = {}
        for color, directory in (("blue", self.rails_dir), ("green", self.typescript_dir)):
            exposition = requests.get(f"{self.config.app_url(color)}/metrics", timeout=5).text
            versions[color] = {"runtime": app_runtime(parse_app_info(exposition)),
                               "version": self._source_version(directory)}
        return versions

    def _source_version(self, directory: Path) -> str:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(self.config.repo_root), *args, "--", str(directory)],
                                  capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        try:
            commit = git("log", "-1", "--format=%h")
            changed = git("status", "--porcelain", "--untracked-files=no")
        except (OSError, subprocess.SubprocessError):
            return "unknown (no git checkout)"
        return f"{commit or 'uncommitted'}{'+changes' if changed else ''}"

    def app_rss_mb(self) -> dict[str, dict[str, float]]:
        """Resident memory (MB) of each running app process: blue's web and worker, green."""
        state = self._require_state()
        found: dict[str, dict[str, float]] = {}
        for name, color, role in (("blue", "blue", "web"), (BLUE_WORKER, "blue", "worker"), ("green", "green", "web")):
            info = state["components"].get(name)
            if not info or not self._owned(int(info["pid"])):
                continue
            status = Path(f"/proc/{info['pid']}/status").read_text()
            kilobytes = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            found.setdefault(color, {})[role] = round(kilobytes / 1024, 1)
        return found

    def _app_can_be_ready(self, color: str) -> bool:
        """False for green while the database is below the schema version green requires."""
        if color != "green":
            return True
        with psycopg2.connect(self.dsn(), connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute("SELECT max(version) FROM schema_migrations")
            version = cur.fetchone()[0] or ""
        conn.close()
        return version >= GREEN_REQUIRED_SCHEMA
