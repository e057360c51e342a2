"""The state directory and its state.json: PIDs, ports, log files and per-up secrets (mode 0600),
so a later process (``python -m sandbox.launcher down``) can stop exactly what was started."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.postgres import APP_ROLES, DB_NAME, DB_USER, STAGE_ROLES
from sandbox.launcher.unleash import UNLEASH_ENVIRONMENT, UNLEASH_PROJECT

STATE_VERSION = 1
MARKER = ".cutover-sandbox"  # only a directory carrying this marker is ever wiped


class StateFile:
    config: SandboxConfig
    _state: dict[str, Any] | None
    _running_as_root: bool

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
                # The stage instances' own roles (members of `cutover`): pg_stat_statements and
                # pg_stat_activity tell each color's statements and connections apart. Passwords
                # generated per up, like cutover's.
                "stage_roles": {color: {"user": role, "password": secrets.token_urlsafe(24)}
                                for color, role in STAGE_ROLES.items()},
                # The live apps' own roles (the gate's statement time per color), likewise.
                "app_roles": {color: {"user": role, "password": secrets.token_urlsafe(24)}
                              for color, role in APP_ROLES.items()},
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
