"""Prometheus: scrapes both apps and HAProxy (ready once each has been scraped once) and the
stage instances' ports (job stage_apps: usually down, only up during stages 6 and 7)."""

from __future__ import annotations

from typing import Any

import requests

from sandbox.config import SandboxConfig
from sandbox.launcher.processes import PROBE_TIMEOUT, http_ok

LIVE_JOBS = ("apps", "haproxy")


class Prometheus:
    config: SandboxConfig
    _state: dict[str, Any] | None

    def _spawn_prometheus(self) -> None:
        cfg = self.config
        rules_glob = cfg.repo_root / "include" / "prometheus" / "rules" / "*.yml"
        rendered = self._render("prometheus", cfg.repo_root / "include" / "prometheus" / "prometheus.yml.tmpl",
                                "prometheus.yml", {
                                    "rules_glob": rules_glob, "host": cfg.host, "blue_port": cfg.blue_port,
                                    "green_port": cfg.green_port, "haproxy_exporter_port": cfg.haproxy_exporter_port,
                                    "blue_stage_port": cfg.blue_stage_port, "green_stage_port": cfg.green_stage_port,
                                    "alertmanager_port": cfg.alertmanager_port,
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
        self._wait_ready("prometheus", lambda: http_ok(f"{self.config.prometheus_url}/-/ready"), logfile, pid)
        # Gates query right after up: wait for a first successful scrape of every target.
        self._wait_ready("prometheus targets", self._prometheus_targets_up, logfile, pid)

    def _prometheus_targets_up(self) -> bool:
        answer = requests.get(f"{self.config.prometheus_url}/api/v1/targets", timeout=PROBE_TIMEOUT).json()
        # The stage instances (job stage_apps) run only during stages 6 and 7: not waited for.
        targets = [target for target in answer["data"]["activeTargets"] if target["labels"].get("job") in LIVE_JOBS]
        return len(targets) == 3 and all(target["health"] == "up" for target in targets)
