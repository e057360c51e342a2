"""The blue and green demo apps (sandbox.app) and the flag file they evaluate."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import psycopg2

from sandbox.config import GREEN_REQUIRED_SCHEMA, SandboxConfig
from sandbox.launcher.plugins_path import PLUGINS_DIR, plugins_on_path
from sandbox.launcher.processes import http_ok

log = logging.getLogger("sandbox")


def write_rails_flags(path: Path) -> Any:
    """The flag file at the Rails-safe default (every feature served by Rails), verified by read-back."""
    plugins_on_path()
    from cutover_kit.flags.flagd_file import FlagdFileStore
    from cutover_kit.flags.model import FlagState, apply_flags

    return apply_flags(FlagdFileStore(path), FlagState.rails())



class Apps:
    config: SandboxConfig
    _state: dict[str, Any] | None

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
        self._wait_ready(f"{color} app", lambda: http_ok(f"{cfg.app_url(color)}{probe}"), self._log_path(color), pid)
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
