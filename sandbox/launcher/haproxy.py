"""HAProxy: the router in front of both apps, with its runtime socket and Prometheus exporter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.config import COLORS, SandboxConfig
from sandbox.launcher.plugins_path import plugins_on_path
from sandbox.launcher.processes import http_ok


def haproxy_server_states(socket_path: Path | str, backend: str = "app") -> dict[str, str]:
    """Color -> status ("UP", "DOWN", "UP 1/2", "MAINT", ...), read with cutover_kit's runtime client."""
    plugins_on_path()
    from cutover_kit.routing.haproxy_runtime import HAProxyRuntimeRouter

    return HAProxyRuntimeRouter(backend=backend, socket_path=str(socket_path)).server_states()


class HAProxy:
    config: SandboxConfig
    _state: dict[str, Any] | None

    def _start_haproxy(self) -> None:
        cfg = self.config
        rendered = self._render("haproxy", cfg.repo_root / "include" / "haproxy" / "haproxy.cfg.tmpl", "haproxy.cfg", {
            "haproxy_socket": cfg.haproxy_socket, "host": cfg.host, "router_port": cfg.router_port,
            "blue_port": cfg.blue_port, "green_port": cfg.green_port,
            "haproxy_exporter_port": cfg.haproxy_exporter_port, "haproxy_cohort_map": cfg.haproxy_cohort_map,
            "haproxy_routing_map": cfg.haproxy_routing_map,
        })
        # HAProxy refuses to start without its map files. Both start empty (routing by user off, no
        # cohort on green) and are only ever changed through the runtime API afterwards.
        cfg.haproxy_cohort_map.write_text("")
        cfg.haproxy_routing_map.write_text("")
        self._check_config("haproxy", ["haproxy", "-c", "-f", str(rendered)])
        cfg.haproxy_socket.unlink(missing_ok=True)
        # -db: foreground, no master process, so the recorded PID is the one serving traffic.
        pid = self._spawn("haproxy", ["haproxy", "-db", "-f", str(rendered)])
        logfile = self._log_path("haproxy")
        self._wait_ready("haproxy exporter", lambda: http_ok(f"http://{cfg.host}:{cfg.haproxy_exporter_port}/metrics"),
                         logfile, pid)
        # Until health checks pass HAProxy answers 503 "no server available": wait for both UP
        # (green only once its schema is there; HAProxy checks /readyz).
        for color in filter(self._app_can_be_ready, COLORS):
            self._wait_ready(f"haproxy sees {color} UP", self._haproxy_sees_up(color), logfile, pid)

    def _haproxy_sees_up(self, color: str) -> Callable[[], bool]:
        return lambda: haproxy_server_states(self.config.haproxy_socket).get(color) == "UP"
