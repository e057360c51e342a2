"""Sentry: the local envelope receiver (sandbox/sentry_receiver.py) both apps and Airflow report
exceptions to, each under its own project id, and the Connection readers query it through."""

from __future__ import annotations

import sys
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.launcher.processes import http_ok

# Per-color projects, as a real Sentry would hold them (one project per service); the `color` tag
# on every event says the same, so a reader can use either.
SENTRY_PROJECTS = {"blue": 1, "green": 2, "airflow": 3}
# The DSN's public key: the receiver accepts any, a real Sentry issues one per project.
SENTRY_PUBLIC_KEY = "sandbox"
SENTRY_ENVIRONMENT = "sandbox"
# The organization slug of the events API (GET /api/0/organizations/<org>/events/).
SENTRY_ORGANIZATION = "sandbox"


def sentry_dsn(host: str, port: int, project: str) -> str:
    return f"http://{SENTRY_PUBLIC_KEY}@{host}:{port}/{SENTRY_PROJECTS[project]}"


class SentryReceiverComponent:
    config: SandboxConfig
    _state: dict[str, Any] | None

    @property
    def sentry_events_file(self):
        return self.config.state_dir / "sentry" / "events.jsonl"

    def _start_sentry(self) -> None:
        cfg = self.config
        self.sentry_events_file.parent.mkdir(exist_ok=True)
        pid = self._spawn("sentry", [
            sys.executable, "-m", "sandbox.sentry_receiver", "--host", cfg.host, "--port", str(cfg.sentry_port),
            "--out", str(self.sentry_events_file), "--tag", self._process_tag("sentry"),
        ])
        self._wait_ready("sentry receiver", lambda: http_ok(f"http://{cfg.host}:{cfg.sentry_port}/healthz"),
                         self._log_path("sentry"), pid)

    def _sentry_env(self, color: str) -> dict[str, str]:
        """What an app reports its exceptions with: its project's DSN, its release (color@source
        version), the environment. Set explicitly, so a DSN in the caller's shell never leaks in."""
        directory = self.rails_dir if color == "blue" else self.typescript_dir
        return {
            "SENTRY_DSN": sentry_dsn(self.config.host, self.config.sentry_port, color),
            "SENTRY_RELEASE": f"{color}@{self._source_version(directory)}",
            "SENTRY_ENVIRONMENT": SENTRY_ENVIRONMENT,
        }

    def _error_tracking_connections(self, state: dict[str, Any]) -> dict[str, dict[str, Any]]:
        from cutover_kit import connections

        port = state["ports"].get("sentry_port", self.config.sentry_port)
        return {connections.ERROR_TRACKING: {
            "conn_type": "http", "host": self.config.host, "port": port,
            # cutover_kit.hooks.error_tracking: which project holds each color and the tag naming it.
            "extra": {"organization": SENTRY_ORGANIZATION,
                      "projects": {color: SENTRY_PROJECTS[color] for color in ("blue", "green")},
                      "color_tag": "color"},
        }}
