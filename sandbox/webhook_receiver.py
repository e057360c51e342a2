"""A tiny local webhook receiver: records every POSTed JSON body (and its headers), answers 200.

The sandbox runs it as its `webhooks` component (sandbox/launcher/webhooks.py): the smoke and
cutover notifications and Alertmanager's posts land here, one JSON line each in
``<state>/webhooks/received.jsonl``. Tasks and the rehearsal read them back with

    GET /received?path_prefix=/alertmanager/&since=<unix seconds>

which answers ``{"received": [{"path", "headers", "body", "received_at"}, ...]}`` in arrival order
(Authorization headers masked). By hand, for a person who wants to see what a failed smoke run
would post to Slack without a Slack workspace:

    python -m sandbox.webhook_receiver --port 18099 --out /tmp/webhooks.jsonl
    export AIRFLOW_CONN_SMOKE_WEBHOOK='{"conn_type": "http", "host": "127.0.0.1", "port": 18099, "extra": {"endpoint": "/hooks/smoke"}}'

Binds to loopback only. A body that is not JSON is answered 400 (Slack answers invalid_payload).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.served_in_thread import ServedInThread

MAX_BODY_BYTES = 1024 * 1024
READBACK_PATH = "/received"
HEALTH_PATH = "/healthz"


class ReadbackQueryError(ValueError):
    """A GET /received query that cannot be answered (answered 400 with this message)."""


def parse_readback_query(query: str) -> tuple[str, float | None]:
    """``path_prefix=/x&since=1700000000.5`` -> ("/x", 1700000000.5); both optional."""
    params = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(params) - {"path_prefix", "since"})
    if unknown:
        raise ReadbackQueryError(f"unknown query parameter(s) {', '.join(unknown)}; expected path_prefix, since")
    prefix = params.get("path_prefix", [""])[-1]
    if prefix and not prefix.startswith("/"):
        raise ReadbackQueryError(f"path_prefix must start with '/', got {prefix!r}")
    raw_since = params.get("since", [""])[-1]
    if raw_since == "":
        return prefix, None
    try:
        since = float(raw_since)
    except ValueError:
        raise ReadbackQueryError(f"since must be a Unix timestamp in seconds, got {raw_since!r}") from None
    return prefix, since


def select_received(entries: list[dict[str, Any]], path_prefix: str = "", since: float | None = None) -> list[dict[str, Any]]:
    """Entries whose path starts with path_prefix and that arrived at or after since, in order;
    Authorization headers masked (the readback is for checking what was sent, not for tokens)."""
    selected = []
    for entry in entries:
        if not entry["path"].startswith(path_prefix) or (since is not None and entry.get("received_at", 0.0) < since):
            continue
        headers = {name: ("<masked>" if name.lower() == "authorization" else value)
                   for name, value in entry["headers"].items()}
        selected.append({**entry, "headers": headers})
    return selected


class WebhookReceiver(ServedInThread):
    """``with WebhookReceiver() as hooks: ... hooks.received`` (list of {path, headers, body})."""

    THREAD_NAME = "webhook-receiver"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, out: Path | None = None, status: int = 200,
                 echo: bool = False) -> None:
        self.received: list[dict[str, Any]] = []
        self._echo = echo  # print each payload's text to stdout (the CLI)
        self.status = status  # what to answer: tests set 500 to see the notifier cope
        self._out = out
        if out is not None and out.exists():
            # A restarted receiver keeps answering for what arrived before the restart.
            self.received.extend(json.loads(line) for line in out.read_text().splitlines() if line.strip())
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive clients (requests.Session) otherwise wait ~40 ms per answer (Nagle).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                if url.path == HEALTH_PATH:
                    self._answer(200, {"ok": True})
                    return
                if url.path != READBACK_PATH:
                    self._answer(404, {"ok": False, "error": f"GET serves only {READBACK_PATH} and {HEALTH_PATH}"})
                    return
                try:
                    prefix, since = parse_readback_query(url.query)
                except ReadbackQueryError as error:
                    self._answer(400, {"ok": False, "error": str(error)})
                    return
                with receiver._lock:
                    entries = list(receiver.received)
                self._answer(200, {"received": select_received(entries, prefix, since)})

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._answer(413, {"ok": False, "error": "payload too large"})
                    return
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except (UnicodeDecodeError, json.JSONDecodeError):
                    self._answer(400, {"ok": False, "error": "invalid_payload"})
                    return
                receiver._record({"path": self.path, "headers": dict(self.headers.items()), "body": body,
                                  "received_at": time.time()})
                self._answer(receiver.status, {"ok": 200 <= receiver.status < 300})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]}:{self.port}"

    def connection(self, endpoint: str = "/hooks/smoke", **extra: Any) -> dict[str, Any]:
        """This receiver as an Airflow Connection (JSON format), e.g. for AIRFLOW_CONN_SMOKE_WEBHOOK."""
        host, port = self._server.server_address[:2]
        return {"conn_type": "http", "host": host, "port": port, "extra": {"endpoint": endpoint, **extra}}

    def _record(self, entry: dict[str, Any]) -> None:
        with self._arrived:
            self.received.append(entry)
            if self._out is not None:
                with open(self._out, "a") as out:
                    out.write(json.dumps(entry) + "\n")
            if self._echo:
                body = entry["body"]
                print(body.get("text", json.dumps(body)) if isinstance(body, dict) else json.dumps(body), flush=True)
            self._arrived.notify_all()

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.webhook_receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18099)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--out", type=Path, default=None, help="append each received body as a JSON line")
    parser.add_argument("--quiet", action="store_true", help="do not print each payload (the sandbox component)")
    # Ignored here: the sandbox launcher's mark on its own processes (sandbox.launcher.processes).
    parser.add_argument("--tag", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    receiver = WebhookReceiver(host=args.host, port=args.port, out=args.out, echo=not args.quiet)
    print(f"webhook receiver on {receiver.url}; connection: {json.dumps(receiver.connection())}", file=sys.stderr, flush=True)
    try:
        receiver._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        receiver._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
