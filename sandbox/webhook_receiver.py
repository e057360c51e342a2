"""A tiny local webhook receiver: records every POSTed JSON body (and its headers), answers 200.

For the smoke DAG's tests and benchmark, and for a person who wants to see what a failed smoke run
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY_BYTES = 1024 * 1024


class WebhookReceiver:
    """``with WebhookReceiver() as hooks: ... hooks.received`` (list of {path, headers, body})."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, out: Path | None = None, status: int = 200,
                 echo: bool = False) -> None:
        self.received: list[dict[str, Any]] = []
        self._echo = echo  # print each payload's text to stdout (the CLI)
        self.status = status  # what to answer: tests set 500 to see the notifier cope
        self._out = out
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
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
                receiver._record({"path": self.path, "headers": dict(self.headers.items()), "body": body})
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

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.webhook_receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18099)
    parser.add_argument("--out", type=Path, default=None, help="append each received body as a JSON line")
    args = parser.parse_args(argv)
    receiver = WebhookReceiver(port=args.port, out=args.out, echo=True)
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
