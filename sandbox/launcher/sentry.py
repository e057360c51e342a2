"""Sentry: the local envelope receiver (sandbox/sentry_receiver.py) both apps and Airflow report
exceptions to, each under its own project id, and the Connection readers query it through."""

from __future__ import annotations

import os
import sys
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.processes import http_ok

# Per-color projects, as a real Sentry would hold them (one project per service); the `color` tag
# on every event says the same, so a reader can use either.
SENTRY_PROJECTS = {"blue": 1, "green": 2, "airflow": 3}
# The DSN's public key: the receiver accepts any, a real Sentry issues one per project.
SENTRY_PUBLIC_KEY = "sandbox"
SENTRY_ENVIRONMENT = "sandbox"
# The organization slug of the events API (GET /api/0/organizations/<org>/events/).
SENTRY_ORGANIZATION = "sandbox"


# Green's share of requests traced (OpenTelemetry through @sentry/node, sent to the receiver as
# transactions, summarised at GET /traces). Off by default: tracing costs green latency, and the
# gate reads latency from Prometheus histograms, not from traces.
TRACES_SAMPLE_RATE_SETTING = "SANDBOX_TRACES_SAMPLE_RATE"


def traces_sample_rate(env: dict[str, str] | os._Environ) -> str:
    raw = env.get(TRACES_SAMPLE_RATE_SETTING) or "0"
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise SandboxError(f"{TRACES_SAMPLE_RATE_SETTING}={raw!r}: must be a number in [0, 1]")
    return raw


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

    def _app_release(self, color: str) -> str:
        """The release a color reports with, the same in its log lines (APP_RELEASE) and its error
        events (SENTRY_RELEASE), so a log excerpt and a tracker event of one halt name one release."""
        directory = self.rails_dir if color == "blue" else self.typescript_dir
        return f"{color}@{self._source_version(directory)}"

    def _sentry_env(self, color: str) -> dict[str, str]:
        """What an app reports its exceptions with: its project's DSN, its release (color@source
        version), the environment. Set explicitly, so a DSN in the caller's shell never leaks in."""
        env = {
            "SENTRY_DSN": sentry_dsn(self.config.host, self.config.sentry_port, color),
            "SENTRY_RELEASE": self._app_release(color),
            "SENTRY_ENVIRONMENT": SENTRY_ENVIRONMENT,
        }
        if color == "green":  # sentry-rails 5.3 could trace too; left at 0 (docs/observability.md)
            env["SENTRY_TRACES_SAMPLE_RATE"] = traces_sample_rate(os.environ)
        return env

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
