"""A small local Sentry: receives what the SDKs send, keeps one line per error event, and answers
counts through a subset of Sentry's own events API, so the same reader works against either.

Ingestion (what the SDKs post to, https://develop.sentry.dev/sdk/foundations/transport/envelopes/):
  POST /api/<project_id>/envelope/   an envelope: a JSON header line, then items, each a JSON item
                                     header line (``type``, optional ``length`` in bytes) and its
                                     payload (``length`` bytes, else up to the next newline)
  POST /api/<project_id>/store/      one event as a JSON body (older SDKs)
Bodies may be gzip-, deflate- or brotli-encoded (Content-Encoding; sentry-python sends br). ``event`` items (errors) are kept;
``transaction`` items (traces: @sentry/node's OpenTelemetry spans when green samples them) are
kept apart and summarised by ``GET /traces``; sessions and client reports are counted in
``/stats`` and dropped.
Authentication (X-Sentry-Auth, ``sentry_key``) is accepted and not checked: loopback only.

Each kept event is one JSON line in ``--out`` (the sandbox: <state dir>/sentry/events.jsonl):
project id, event id, received/occurred time, release, environment, color, exception types.

Queries (the shape of Sentry's ``GET /api/0/organizations/<org>/events/``):
  GET /api/0/organizations/<org>/events/?field=error.type&field=tags[color]&field=count()
      &query=tags[color]:green release:abc&start=<ISO 8601>&end=<ISO 8601>&project=3
  -> {"data": [{"error.type": ["InjectedFaultError"], "tags[color]": "green", "count()": 7}], "meta": {...}}
Fields: error.type (the exception chain's types, innermost cause first, as Sentry lists them),
release, environment, tags[<name>], project.id, and the aggregate count(). Query terms are
``key:value`` (keys as the fields; a bare ``color:x`` means the tag), AND-ed. ``start``/``end``
bound the event's own timestamp. Everything else Sentry's API offers is refused with a 400 naming
it, so a reader relying on it fails here first, not in production.

    python -m sandbox.sentry_receiver --port 18097 --out /tmp/sentry-events.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.served_in_thread import ServedInThread

MAX_BODY_BYTES = 20 * 1024 * 1024  # Sentry's own envelope limit is 200 MB; SDK events are KBs
COLOR_TAG = "color"
GROUP_FIELDS = ("error.type", "release", "environment", "project.id")
COUNT = "count()"


class EnvelopeError(ValueError):
    """A body that is not a Sentry envelope (or event); the message says where it broke."""


@dataclass(frozen=True)
class ReceivedEvent:
    """One error event as the receiver keeps it (one JSON line)."""

    project_id: str
    event_id: str
    timestamp: float  # when it happened (the event's own timestamp; received_at if it has none)
    received_at: float
    release: str | None
    environment: str | None
    tags: dict[str, str] = field(default_factory=dict)
    exception_types: tuple[str, ...] = ()  # innermost cause first, the raised one last (Sentry's order)
    handled: bool | None = None
    sdk: str | None = None

    @property
    def color(self) -> str | None:
        return self.tags.get(COLOR_TAG)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "exception_types": list(self.exception_types)}, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReceivedEvent:
        return cls(**{**data, "exception_types": tuple(data.get("exception_types") or ())})


def decode_body(raw: bytes, content_encoding: str | None) -> bytes:
    """The body without its Content-Encoding (gzip, deflate or none); gzip is also sniffed,
    because some transports compress without saying so."""
    encoding = (content_encoding or "").strip().lower()
    try:
        if encoding == "gzip" or raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        if encoding == "deflate":
            return zlib.decompress(raw)
        if encoding == "br":  # sentry-python compresses with brotli whenever the module is importable
            import brotli  # in the lock (brotli 1.2), imported only by a receiver that gets such a body

            return brotli.decompress(raw)
    except Exception as error:  # noqa: BLE001 - gzip, zlib and brotli each raise their own error types
        raise EnvelopeError(f"body says Content-Encoding {encoding or 'gzip (sniffed)'} but does not decode: {error}") from None
    if encoding not in ("", "identity"):
        raise EnvelopeError(f"unsupported Content-Encoding {encoding!r} (gzip, deflate, br or none)")
    return raw


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """(envelope headers, [(item headers, payload bytes)]) of an envelope body."""
    position, end = 0, len(body)

    def read_line() -> bytes:
        nonlocal position
        newline = body.find(b"\n", position)
        line = body[position:] if newline < 0 else body[position:newline]
        position = end if newline < 0 else newline + 1
        return line

    def json_line(line: bytes, what: str) -> dict[str, Any]:
        try:
            value = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise EnvelopeError(f"{what} is not JSON ({error}): {line[:80]!r}") from None
        if not isinstance(value, dict):
            raise EnvelopeError(f"{what} is not a JSON object: {line[:80]!r}")
        return value

    headers = json_line(read_line(), "envelope header")
    items = []
    while position < end:
        line = read_line()
        if not line.strip():  # a trailing newline, or blank lines between items
            continue
        item_headers = json_line(line, f"item header {len(items) + 1}")
        if "type" not in item_headers:
            raise EnvelopeError(f"item header {len(items) + 1} has no type: {line[:80]!r}")
        length = item_headers.get("length")
        if length is None:
            payload = read_line()
        else:
            if not isinstance(length, int) or length < 0 or position + length > end:
                raise EnvelopeError(f"item {len(items) + 1} ({item_headers['type']}) says length {length!r} "
                                    f"but {end - position} bytes remain")
            payload = body[position:position + length]
            position += length
            if body[position:position + 1] == b"\n":
                position += 1
        items.append((item_headers, payload))
    return headers, items


def _timestamp(value: Any, default: float) -> float:
    """Sentry timestamps are Unix seconds (number) or RFC 3339 strings."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return default
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
    return default


def _tags(value: Any) -> dict[str, str]:
    """Tags come as an object, or as [key, value] pairs (both are valid in Sentry's protocol)."""
    if isinstance(value, dict):
        return {str(key): str(item) for key, item in value.items()}
    if isinstance(value, list):
        return {str(pair[0]): str(pair[1]) for pair in value if isinstance(pair, (list, tuple)) and len(pair) == 2}
    return {}


@dataclass(frozen=True)
class ReceivedTransaction:
    """One traced request (a transaction item): where, how long, how many spans."""

    project_id: str
    trace_id: str
    name: str  # the route, e.g. "GET /api/orders/:id"
    op: str | None  # http.server for an incoming request
    start: float
    duration_ms: float
    span_ops: tuple[str, ...]
    release: str | None
    color: str | None

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "span_ops": list(self.span_ops)}, sort_keys=True)


def transaction_from_payload(payload: dict[str, Any], project_id: str, received_at: float) -> ReceivedTransaction:
    start = _timestamp(payload.get("start_timestamp"), received_at)
    end = _timestamp(payload.get("timestamp"), start)
    trace = ((payload.get("contexts") or {}).get("trace") or {}) if isinstance(payload.get("contexts"), dict) else {}
    spans = [span for span in payload.get("spans") or () if isinstance(span, dict)]
    return ReceivedTransaction(project_id=str(project_id), trace_id=str(trace.get("trace_id") or ""),
                               name=str(payload.get("transaction") or ""), op=trace.get("op"), start=start,
                               duration_ms=round((end - start) * 1000, 3), span_ops=tuple(str(span.get("op")) for span in spans),
                               release=payload.get("release"), color=_tags(payload.get("tags")).get(COLOR_TAG))


def summarise_transactions(transactions: list[ReceivedTransaction], color: str | None, since: float) -> dict[str, Any]:
    """Per transaction name: count and duration p50/p95/max (ms); per span op: count."""
    durations: dict[str, list[float]] = {}
    span_ops: Counter = Counter()
    for transaction in transactions:
        if transaction.start < since or (color is not None and transaction.color != color):
            continue
        durations.setdefault(transaction.name, []).append(transaction.duration_ms)
        span_ops.update(transaction.span_ops)

    def quantile(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"transactions": {name: {"count": len(values), "p50_ms": quantile(values, 0.5), "p95_ms": quantile(values, 0.95),
                                    "max_ms": max(values)} for name, values in sorted(durations.items())},
            "span_ops": dict(span_ops)}


def event_from_payload(payload: dict[str, Any], project_id: str, received_at: float,
                       envelope_headers: dict[str, Any] | None = None) -> ReceivedEvent:
    """The fields the receiver keeps from one event payload."""
    exception = payload.get("exception")
    values = exception.get("values") if isinstance(exception, dict) else exception
    values = [value for value in values or () if isinstance(value, dict)]
    mechanism = (values[-1].get("mechanism") or {}) if values else {}
    sdk = payload.get("sdk") or (envelope_headers or {}).get("sdk") or {}
    return ReceivedEvent(
        project_id=str(project_id),
        event_id=str(payload.get("event_id") or (envelope_headers or {}).get("event_id") or ""),
        timestamp=_timestamp(payload.get("timestamp"), received_at),
        received_at=received_at,
        release=payload.get("release"),
        environment=payload.get("environment"),
        tags=_tags(payload.get("tags")),
        exception_types=tuple(str(value.get("type") or "Error") for value in values),
        handled=mechanism.get("handled") if isinstance(mechanism, dict) else None,
        sdk=f"{sdk.get('name')}/{sdk.get('version')}" if isinstance(sdk, dict) and sdk.get("name") else None,
    )


def events_from_envelope(body: bytes, project_id: str, received_at: float) -> tuple[list[ReceivedEvent], Counter]:
    """(error events, count of every item type seen) of one envelope body."""
    events, _, seen = items_from_envelope(body, project_id, received_at)
    return events, seen


def items_from_envelope(body: bytes, project_id: str,
                        received_at: float) -> tuple[list[ReceivedEvent], list[ReceivedTransaction], Counter]:
    """(error events, transactions, count of every item type seen) of one envelope body."""
    headers, items = parse_envelope(body)
    seen: Counter = Counter()
    events, transactions = [], []
    for item_headers, payload in items:
        kind = str(item_headers["type"])
        seen[kind] += 1
        if kind not in ("event", "transaction"):
            continue
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise EnvelopeError(f"{kind} item payload is not JSON: {error}") from None
        if kind == "event":
            events.append(event_from_payload(data, project_id, received_at, headers))
        else:
            transactions.append(transaction_from_payload(data, project_id, received_at))
    return events, transactions, seen


# ------------------------------------------------------------------------------------- queries


class QueryError(ValueError):
    """A query this receiver does not answer; the message names the part."""


def _field_value(event: ReceivedEvent, name: str) -> Any:
    if name == "error.type":
        return list(event.exception_types)
    if name == "release":
        return event.release
    if name == "environment":
        return event.environment
    if name == "project.id":
        return event.project_id
    if name.startswith("tags[") and name.endswith("]"):
        return event.tags.get(name[5:-1])
    raise QueryError(f"field {name!r} is not supported here (supported: {', '.join(GROUP_FIELDS)}, tags[<name>], {COUNT})")


def _term_key(key: str) -> str:
    return key if key in GROUP_FIELDS or key.startswith("tags[") else f"tags[{key}]"


def parse_query(text: str) -> list[tuple[str, str]]:
    """`key:value` terms, space-separated, AND-ed: [(field name, value)]."""
    terms = []
    for term in text.split():
        key, sep, value = term.partition(":")
        if not sep or not key or not value or key.startswith("!"):
            raise QueryError(f"query term {term!r}: only key:value terms are supported (no negation, OR, quotes or wildcards)")
        terms.append((_term_key(key), value))
    return terms


def _matches(event: ReceivedEvent, terms: list[tuple[str, str]]) -> bool:
    for key, value in terms:
        actual = _field_value(event, key)
        if isinstance(actual, list) and value not in actual:
            return False
        if not isinstance(actual, list) and actual != value:
            return False
    return True


def query_events(events: list[ReceivedEvent], params: dict[str, list[str]]) -> dict[str, Any]:
    """The answer of GET .../events/ to ``params`` (parse_qs form) over ``events``."""
    unknown = sorted(set(params) - {"field", "query", "start", "end", "project", "statsPeriod", "per_page"})
    if unknown:
        raise QueryError(f"parameters {', '.join(unknown)} are not supported here")
    if "statsPeriod" in params:
        raise QueryError("statsPeriod is not supported here: give start and end")
    fields = params.get("field") or []
    if COUNT not in fields:
        raise QueryError(f"this receiver answers counts only: add field={COUNT}")
    groups = [name for name in fields if name != COUNT]
    for name in groups:
        _field_value(ReceivedEvent("0", "", 0.0, 0.0, None, None), name)  # raises on an unsupported field
    terms = parse_query(" ".join(params.get("query") or []))
    start = _timestamp((params.get("start") or [None])[0], float("-inf"))
    end = _timestamp((params.get("end") or [None])[0], float("inf"))
    projects = set(params.get("project") or [])
    counts: Counter = Counter()
    for event in events:
        if not start <= event.timestamp < end or (projects and event.project_id not in projects):
            continue
        if not _matches(event, terms):
            continue
        values = (_field_value(event, name) for name in groups)
        counts[tuple(tuple(value) if isinstance(value, list) else value for value in values)] += 1
    rows = [{**{name: list(value) if isinstance(value, tuple) else value for name, value in zip(groups, key)}, COUNT: count}
            for key, count in sorted(counts.items(), key=lambda item: (-item[1], json.dumps(item[0])))]
    per_page = int((params.get("per_page") or ["100"])[0])
    return {"data": rows[:per_page],
            "meta": {"fields": {**{name: "array" if name == "error.type" else "string" for name in groups}, COUNT: "integer"}}}


# ------------------------------------------------------------------------------------- server


class SentryReceiver(ServedInThread):
    """``with SentryReceiver(out=path) as sentry: ... sentry.events()``; also the sandbox component."""

    THREAD_NAME = "sentry-receiver"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, out: Path | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._events: list[ReceivedEvent] = []
        self._transactions: list[ReceivedTransaction] = []
        self.item_types: Counter = Counter()
        self.rejected = 0
        if out is not None and out.exists():  # a restarted receiver keeps what it had received
            self._events = [ReceivedEvent.from_dict(json.loads(line)) for line in out.read_text().splitlines() if line.strip()]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the SDKs reuse their connection
            disable_nagle_algorithm = True  # GUIDE.md: 44 ms -> <1 ms per answer with keep-alive

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path).path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "api" or parts[2] not in ("envelope", "store") or not parts[1].isdigit():
                    self.close_connection = True  # the body is not read: the connection cannot be reused
                    self._answer(404, {"detail": f"no endpoint {self.path}; POST /api/<project_id>/envelope/ or /store/"})
                    return
                try:
                    raw = self._body()
                except EnvelopeError as error:
                    self.close_connection = True
                    self._answer(413, {"detail": str(error)})
                    return
                try:
                    accepted = receiver.ingest(parts[1], parts[2], raw, self.headers.get("Content-Encoding"))
                except EnvelopeError as error:
                    receiver.rejected += 1
                    print(f"rejected POST {self.path} ({self.headers.get('User-Agent')}): {error}", flush=True)
                    self._answer(400, {"detail": str(error)})
                    return
                self._answer(200, {"id": accepted[0].event_id if accepted else None})

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if url.path in ("/healthz", "/_health/"):
                    self._answer(200, {"status": "ok", "events": receiver.count})
                elif url.path == "/stats":
                    self._answer(200, receiver.stats())
                elif url.path == "/traces":
                    query = parse_qs(url.query)
                    try:
                        since = float((query.get("since") or ["0"])[0])
                    except ValueError:
                        self._answer(400, {"detail": "since must be Unix seconds"})
                        return
                    self._answer(200, summarise_transactions(receiver.transactions(), (query.get("color") or [None])[0], since))
                elif len(parts) == 5 and parts[:3] == ["api", "0", "organizations"] and parts[4] == "events":
                    try:
                        self._answer(200, query_events(receiver.events(), parse_qs(url.query)))
                    except (QueryError, ValueError) as error:
                        self._answer(400, {"detail": str(error)})
                else:
                    self._answer(404, {"detail": f"no endpoint {url.path}"})

            def _body(self) -> bytes:
                """The request body, by Content-Length or chunked (@sentry/node 10 streams its
                envelopes with Transfer-Encoding: chunked and no length)."""
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > MAX_BODY_BYTES:
                        raise EnvelopeError(f"body of {length} bytes is above {MAX_BODY_BYTES}")
                    return self.rfile.read(length)
                chunks, total = [], 0
                while True:
                    size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(1024).strip():  # trailer headers, then the blank line
                            pass
                        return b"".join(chunks)
                    total += size
                    if total > MAX_BODY_BYTES:
                        raise EnvelopeError(f"chunked body above {MAX_BODY_BYTES} bytes")
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline(8)  # the CRLF after each chunk

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - one line per event instead
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def ingest(self, project_id: str, endpoint: str, raw: bytes, content_encoding: str | None) -> list[ReceivedEvent]:
        """Keep the error events of one POST body; raises EnvelopeError before keeping anything."""
        body = decode_body(raw, content_encoding)
        now = time.time()
        if endpoint == "store":
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise EnvelopeError(f"store body is not JSON: {error}") from None
            events, transactions, seen = [event_from_payload(payload, project_id, now)], [], Counter(event=1)
        else:
            events, transactions, seen = items_from_envelope(body, project_id, now)
        with self._arrived:
            self.item_types.update(seen)
            self._events.extend(events)
            self._transactions.extend(transactions)
            if self._out is not None and events:
                with open(self._out, "a") as out:
                    out.write("".join(event.to_json() + "\n" for event in events))
            if self._out is not None and transactions:
                with open(self._out.with_name("transactions.jsonl"), "a") as out:
                    out.write("".join(transaction.to_json() + "\n" for transaction in transactions))
            self._arrived.notify_all()
        for event in events:
            print(f"event project={event.project_id} color={event.color} release={event.release} "
                  f"type={'/'.join(event.exception_types) or '-'} id={event.event_id}", flush=True)
        return events

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._events)

    def events(self) -> list[ReceivedEvent]:
        with self._lock:
            return list(self._events)

    def transactions(self) -> list[ReceivedTransaction]:
        with self._lock:
            return list(self._transactions)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"events": len(self._events), "items": dict(self.item_types), "rejected": self.rejected}

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[ReceivedEvent]:
        """The events once predicate(events) is true, or as they are at the timeout."""
        with self._arrived:
            self._arrived.wait_for(lambda: predicate(list(self._events)), timeout=timeout)
            return list(self._events)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]}:{self.port}"

    def dsn(self, project_id: int | str, public_key: str = "sandbox") -> str:
        """The DSN an SDK reports to project ``project_id`` of this receiver with."""
        host, port = self._server.server_address[:2]
        return f"http://{public_key}@{host}:{port}/{project_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.sentry_receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18097)
    parser.add_argument("--out", type=Path, default=None, help="append each error event as a JSON line (and reload it at start)")
    # The sandbox launcher tags the process with its state dir, so its leftover sweep finds it.
    parser.add_argument("--tag", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error(f"--host {args.host}: the receiver listens on loopback only")
    receiver = SentryReceiver(host=args.host, port=args.port, out=args.out)
    print(f"sentry receiver on {receiver.url} ({receiver.count} events loaded); DSN of project 1: {receiver.dsn(1)}",
          file=sys.stderr, flush=True)
    try:
        receiver._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        receiver._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
