"""Alertmanager (Debian prometheus-alertmanager 0.25): routes the rules' alerts to the webhooks
component. Single node (clustering off), its silences and notification log in the state dir.

Started before Prometheus: Prometheus holds back a resend for a minute after a failed first
attempt, so an Alertmanager that comes up late loses the first notifications."""

from __future__ import annotations

from typing import Any

from sandbox.config import SandboxConfig
from sandbox.launcher.processes import http_ok
from sandbox.launcher.webhooks import ALERTMANAGER_PATH_PREFIX

ALERTMANAGER = "alertmanager"
ALERTMANAGER_EXECUTABLE = "prometheus-alertmanager"
# The receiver the shipped routing (include/alertmanager/alertmanager.yml.tmpl) gives a critical
# green alert: what stage 4's routing check expects.
CRITICAL_GREEN_RECEIVER = "green-page"


class Alertmanager:
    config: SandboxConfig
    _state: dict[str, Any] | None

    def _start_alertmanager(self) -> None:
        cfg = self.config
        rendered = self._render(ALERTMANAGER, cfg.repo_root / "include" / "alertmanager" / "alertmanager.yml.tmpl",
                                "alertmanager.yml", {"webhook_url": cfg.webhooks_url})
        self._check_config(ALERTMANAGER, ["amtool", "check-config", str(rendered)])
        storage = cfg.state_dir / ALERTMANAGER / "data"
        storage.mkdir(exist_ok=True)
        pid = self._spawn(ALERTMANAGER, [
            ALERTMANAGER_EXECUTABLE, f"--config.file={rendered}", f"--storage.path={storage}",
            f"--web.listen-address={cfg.host}:{cfg.alertmanager_port}",
            # An empty address turns the gossip cluster off: one node, no port 9094 taken.
            "--cluster.listen-address=",
        ])
        self._wait_ready(ALERTMANAGER, lambda: http_ok(f"{cfg.alertmanager_url}/-/ready"), self._log_path(ALERTMANAGER), pid)

    def _alertmanager_connection(self, ports: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Connection alertmanager_default: the API, and where stage 4 reads a test alert's delivery back."""
        host = self.config.host
        webhooks_port = ports.get("webhooks_port", self.config.webhooks_port)
        return {"alertmanager_default": {
            "conn_type": "http", "host": host, "port": ports.get("alertmanager_port", self.config.alertmanager_port),
            "extra": {
                "routing_test_receiver": CRITICAL_GREEN_RECEIVER,
                # The webhooks component's GET /received, filtered to Alertmanager's posts.
                "readback_url": f"http://{host}:{webhooks_port}/received",
                "readback_path_prefix": ALERTMANAGER_PATH_PREFIX,
            },
        }}
