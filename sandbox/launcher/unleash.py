"""unleash-server (only with SANDBOX_FLAG_BACKEND=unleash): its database on the sandbox PostgreSQL,
Node 20, per-up tokens, and what the apps and Airflow need to reach it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import requests

from sandbox.config import SandboxConfig
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.processes import PROBE_TIMEOUT, http_ok
from sandbox.node import NodeError, project_node

log = logging.getLogger("sandbox")

# unleash-server keeps its own database (and role) on the sandbox PostgreSQL.
UNLEASH_DB_NAME = UNLEASH_DB_USER = "unleash"
# Where the cutover's flags live in Unleash: the project and environment the client token is scoped
# to, and the ones Connection unleash_default names.
UNLEASH_PROJECT = "default"
UNLEASH_ENVIRONMENT = "development"
UNLEASH_NODE_MAJOR = 20  # unleash-server 6.x supports Node 18-20; 7.6+ needs Node 22


class Unleash:
    config: SandboxConfig
    _state: dict[str, Any] | None

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
        self._wait_ready("unleash", lambda: http_ok(f"{url}/health"), logfile, pid)
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
