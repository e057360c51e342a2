"""The webhook receiver (sandbox/webhook_receiver.py) as a sandbox process: the smoke and cutover
notifications and Alertmanager's posts land there, kept as JSON lines in <state>/webhooks/, and
GET /received reads them back (filtered by path prefix and arrival time)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.launcher.plugins_path import plugins_on_path
from sandbox.launcher.processes import APP_PROCESS_TAG, http_ok

WEBHOOKS = "webhooks"
# Paths the sandbox's Connections post to (cutover_kit.connections names the Connections).
SMOKE_ENDPOINT = "/hooks/smoke"
CUTOVER_ENDPOINT = "/hooks/cutover"
ALERTMANAGER_PATH_PREFIX = "/alertmanager/"


class Webhooks:
    config: SandboxConfig
    _state: dict[str, Any] | None

    @property
    def webhooks_file(self) -> Path:
        return self.config.state_dir / WEBHOOKS / "received.jsonl"

    def _start_webhooks(self) -> None:
        cfg = self.config
        self.webhooks_file.parent.mkdir(exist_ok=True)
        # A Python process: its argv carries the launcher's tag (and the state dir through --out),
        # which is how ownership checks and the leftover sweep recognise it.
        argv = [sys.executable, "-m", "sandbox.webhook_receiver", "--host", cfg.host, "--port", str(cfg.webhooks_port),
                "--out", str(self.webhooks_file), "--quiet",
                "--tag", f"{APP_PROCESS_TAG}:{WEBHOOKS} {cfg.state_dir}{os.sep}"]
        pid = self._spawn(WEBHOOKS, argv)
        self._wait_ready("webhooks", lambda: http_ok(f"{cfg.webhooks_url}/healthz"), self._log_path(WEBHOOKS), pid)

    def _webhook_connections(self, ports: dict[str, int]) -> dict[str, dict[str, Any]]:
        """The notification Connections, all pointing at this sandbox's receiver."""
        plugins_on_path()
        from cutover_kit import connections

        host, port = self.config.host, ports.get("webhooks_port", self.config.webhooks_port)
        return {
            connections.SMOKE_WEBHOOK: {"conn_type": "http", "host": host, "port": port,
                                        "extra": {"endpoint": SMOKE_ENDPOINT}},
            connections.CUTOVER_NOTIFICATIONS: {"conn_type": "http", "host": host, "port": port,
                                                "extra": {"endpoint": CUTOVER_ENDPOINT}},
        }
