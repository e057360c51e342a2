"""The sandbox's HAProxy alone, in front of two color apps: for router tests and benchmarks that need
the real include/haproxy/haproxy.cfg.tmpl but not PostgreSQL, Prometheus or the real apps.

    with standalone_router(Path(tmp)) as router:
        router.runtime.set_green_percent(25)
        router.color_for({"X-User-Id": "42"})   # "blue" or "green", from X-Backend-Server

The color apps answer every request (and /readyz) with 200 and their color; HAProxy is rendered from
the same template with the same placeholders as sandbox/launcher/haproxy.py, checked with
``haproxy -c``, started in the foreground (-db) on free loopback ports, and stopped (SIGTERM, then
SIGKILL) with both color apps when the block ends.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template

from sandbox.config import REPO_ROOT
from sandbox.launcher.plugins_path import plugins_on_path

plugins_on_path()

from cutover_kit.routing import RouterError  # noqa: E402
from cutover_kit.routing.haproxy_runtime import HAProxyRuntimeRouter  # noqa: E402

TEMPLATE = REPO_ROOT / "include" / "haproxy" / "haproxy.cfg.tmpl"
HOST = "127.0.0.1"


class _ColorApp(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive without Nagle: <1 ms instead of ~44 ms per request

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.server.color.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App-Color", self.server.color)  # type: ignore[attr-defined]
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base class)
        return


class _ColorServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # HAProxy's health checks and closing keep-alive connections reset sockets: not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class StandaloneRouter:
    runtime: HAProxyRuntimeRouter
    url_host: str
    url_port: int
    config_file: Path

    def color_for(self, headers: dict[str, str] | None = None, connection: http.client.HTTPConnection | None = None) -> str:
        """Send GET / through HAProxy; the color that served it (HAProxy's X-Backend-Server)."""
        own = connection is None
        conn = connection or http.client.HTTPConnection(self.url_host, self.url_port, timeout=5)
        try:
            conn.request("GET", "/", headers=headers or {})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"router answered {response.status} for headers {headers}")
            return response.getheader("X-Backend-Server") or "none"
        finally:
            if own:
                conn.close()

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.url_host, self.url_port, timeout=5)


def _start_color_app(color: str, stack: ExitStack) -> int:
    server = _ColorServer((HOST, 0), _ColorApp)
    server.color = color  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name=f"color-app-{color}", daemon=True)
    thread.start()
    stack.callback(thread.join, 5)
    stack.callback(server.server_close)
    stack.callback(server.shutdown)
    return server.server_address[1]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def standalone_router(work_dir: Path, ready_timeout: float = 20.0) -> Iterator[StandaloneRouter]:
    """HAProxy from the sandbox template in `work_dir`, both colors UP, blue 100 / green 0, routing
    by user off (as the sandbox starts it)."""
    if shutil.which("haproxy") is None:
        raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy)")
    work_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        ports = {"blue_port": _start_color_app("blue", stack), "green_port": _start_color_app("green", stack),
                 "router_port": free_port(), "haproxy_exporter_port": free_port()}
        socket_path, cohort_map, routing_map = work_dir / "haproxy.sock", work_dir / "cohorts.map", work_dir / "routing.map"
        cohort_map.write_text("")
        routing_map.write_text("")
        config_file = work_dir / "haproxy.cfg"
        config_file.write_text(Template(TEMPLATE.read_text()).substitute(
            {**{key: str(value) for key, value in ports.items()}, "host": HOST,
             "haproxy_socket": str(socket_path), "haproxy_cohort_map": str(cohort_map),
             "haproxy_routing_map": str(routing_map)}))
        check = subprocess.run(["haproxy", "-c", "-f", str(config_file)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c refused {config_file}:\n{check.stdout}{check.stderr}")
        log = stack.enter_context(open(work_dir / "haproxy.log", "wb"))
        process = subprocess.Popen(["haproxy", "-db", "-f", str(config_file)], stdout=log, stderr=subprocess.STDOUT)
        stack.callback(_stop, process)
        runtime = HAProxyRuntimeRouter(backend="app", socket_path=str(socket_path), cohort_map=str(cohort_map),
                                       routing_map=str(routing_map))
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {process.returncode}: {(work_dir / 'haproxy.log').read_text()[-2000:]}")
            try:
                if runtime.server_states() == {"blue": "UP", "green": "UP"}:
                    break
            except RouterError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not see both color apps UP within {ready_timeout} s")
            time.sleep(0.1)
        yield StandaloneRouter(runtime, HOST, ports["router_port"], config_file)


if __name__ == "__main__":  # a manual look: python -m sandbox.standalone_router /tmp/router
    with standalone_router(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/standalone-router")) as router:
        print(router.runtime.read_weights(), router.color_for({"X-User-Id": "42"}))
