"""The local Sentry receiver on envelopes captured from the real SDKs (data/sentry_envelope_*.bin:
@sentry/node 10.78.0 as green's src/sentry.ts sends them, sentry-ruby 5.3.0 as blue's initializer
does, an InjectedFaultError raised with a KeyError as its cause), over real HTTP."""

from __future__ import annotations

import gzip
import http.client
import json
from pathlib import Path

import pytest
import requests

from sandbox.sentry_receiver import (
    EnvelopeError, QueryError, ReceivedEvent, SentryReceiver, decode_body, events_from_envelope, items_from_envelope,
    parse_envelope, query_events, summarise_transactions,
)

DATA = Path(__file__).parent / "data"
NODE_EVENT = (DATA / "sentry_envelope_node_event.bin").read_bytes()
NODE_EVENT_ID = json.loads(NODE_EVENT.split(b"\n")[0])["event_id"]  # the envelope header's; the parser reads the payload's
NODE_SESSION = (DATA / "sentry_envelope_node_session.bin").read_bytes()
RUBY_EVENT = (DATA / "sentry_envelope_ruby_event.bin").read_bytes()
# A request green traced with SENTRY_TRACES_SAMPLE_RATE=1 (OpenTelemetry spans of fastify).
NODE_TRANSACTION = (DATA / "sentry_envelope_node_transaction.bin").read_bytes()


def test_node_event_envelope_gives_green_type_release_and_time():
    events, seen = events_from_envelope(NODE_EVENT, "2", received_at=0.0)
    assert seen == {"event": 1}
    (event,) = events
    assert (event.project_id, event.color, event.release, event.environment) == ("2", "green", "green@abc1234", "sandbox")
    assert event.exception_types == ("InjectedFaultError",)
    assert event.tags["route"] == "/api/orders"
    assert event.event_id == NODE_EVENT_ID
    assert event.sdk == "sentry.javascript.node/10.78.0"
    assert event.timestamp > 1.7e9  # the event's own time (a number in this SDK), not received_at


def test_ruby_event_envelope_keeps_the_cause_chain_in_sentry_order():
    (event,), _ = events_from_envelope(RUBY_EVENT, "1", received_at=0.0)
    assert event.color == "blue" and event.release == "blue@abc1234"
    # Innermost cause first, the raised exception last: error.type lists them as Sentry does.
    assert event.exception_types == ("KeyError", "Cutover::InjectedFaultError")
    assert event.timestamp == pytest.approx(1796696769.0)  # "2026-12-08T02:26:09Z", an RFC 3339 string here


def test_sessions_are_counted_not_kept():
    events, seen = events_from_envelope(NODE_SESSION, "2", received_at=0.0)
    assert events == [] and seen == {"session": 1}


def test_an_item_with_a_length_may_contain_newlines_and_be_followed_by_more_items():
    payload = b'{"event_id":"e1","exception":{"values":[{"type":"A"}]},\n"tags":{"color":"green"}}'
    body = b'{}\n' + json.dumps({"type": "event", "length": len(payload)}).encode() + b"\n" + payload + b"\n" \
        + b'{"type":"client_report"}\n{"discarded_events":[]}\n'
    headers, items = parse_envelope(body)
    assert headers == {} and [item["type"] for item, _ in items] == ["event", "client_report"]
    (event,), seen = events_from_envelope(body, "3", received_at=5.0)
    assert event.exception_types == ("A",) and event.timestamp == 5.0 and seen == {"event": 1, "client_report": 1}


@pytest.mark.parametrize("body, message", [
    (b"not json\n", "envelope header is not JSON"),
    (b'{}\n{"length": 2}\n{}\n', "has no type"),
    (b'{}\n{"type": "event", "length": 99}\n{}\n', "says length 99"),
    (b'{}\n{"type": "event"}\nnot json\n', "event item payload is not JSON"),
])
def test_broken_envelopes_are_refused_with_where_they_broke(body, message):
    with pytest.raises(EnvelopeError, match=message):
        events_from_envelope(body, "1", received_at=0.0)


def test_gzip_and_brotli_are_decoded_and_a_lie_is_refused():
    assert decode_body(gzip.compress(RUBY_EVENT), "gzip") == RUBY_EVENT
    assert decode_body(gzip.compress(RUBY_EVENT), "") == RUBY_EVENT  # sniffed: compressed without saying so
    assert decode_body(RUBY_EVENT, "") == RUBY_EVENT  # sentry-ruby sends an empty Content-Encoding
    with pytest.raises(EnvelopeError, match="does not decode"):
        decode_body(b"plain", "gzip")
    import brotli  # sentry-python (Airflow's own Sentry integration) sends br whenever brotli is importable

    assert decode_body(brotli.compress(RUBY_EVENT), "br") == RUBY_EVENT
    with pytest.raises(EnvelopeError, match="does not decode"):
        decode_body(b"plain", "br")
    with pytest.raises(EnvelopeError, match="unsupported Content-Encoding 'zstd'"):
        decode_body(b"plain", "zstd")


def _event(color: str, types: tuple[str, ...], at: float, release: str = "r1", project: str = "1") -> ReceivedEvent:
    return ReceivedEvent(project_id=project, event_id="x", timestamp=at, received_at=at, release=release,
                         environment="sandbox", tags={"color": color}, exception_types=types)


def test_query_counts_by_fields_within_start_and_end():
    events = [_event("green", ("A",), 100), _event("green", ("A",), 101), _event("green", ("B",), 102),
              _event("blue", ("A",), 103), _event("green", ("A",), 50), _event("green", ("C",), 200)]
    answer = query_events(events, {"field": ["error.type", "tags[color]", "count()"],
                                   "start": ["1970-01-01T00:01:40Z"], "end": ["1970-01-01T00:03:20Z"]})
    assert answer["data"] == [
        {"error.type": ["A"], "tags[color]": "green", "count()": 2},
        {"error.type": ["A"], "tags[color]": "blue", "count()": 1},
        {"error.type": ["B"], "tags[color]": "green", "count()": 1},
    ]
    only_green = query_events(events, {"field": ["release", "count()"], "query": ["color:green error.type:A"],
                                       "start": ["1970-01-01T00:01:40Z"]})
    assert only_green["data"] == [{"release": "r1", "count()": 2}]


@pytest.mark.parametrize("params, message", [
    ({"field": ["error.type"]}, "counts only"),
    ({"field": ["title", "count()"]}, "field 'title' is not supported"),
    ({"field": ["count()"], "query": ["!color:green"]}, "only key:value terms"),
    ({"field": ["count()"], "statsPeriod": ["24h"]}, "give start and end"),
    ({"field": ["count()"], "sort": ["-count()"]}, "parameters sort are not supported"),
])
def test_queries_beyond_the_supported_subset_are_refused_by_name(params, message):
    with pytest.raises(QueryError, match=message):
        query_events([], params)


def test_over_http_plain_gzip_chunked_and_store_are_kept_and_counted(tmp_path):
    out = tmp_path / "events.jsonl"
    with SentryReceiver(out=out) as sentry:
        assert requests.post(f"{sentry.url}/api/1/envelope/", data=RUBY_EVENT, timeout=5).status_code == 200
        answer = requests.post(f"{sentry.url}/api/2/envelope/", data=gzip.compress(NODE_EVENT),
                               headers={"Content-Encoding": "gzip"}, timeout=5)
        assert answer.json() == {"id": NODE_EVENT_ID}
        # @sentry/node streams its envelopes chunked, with no Content-Length.
        connection = http.client.HTTPConnection("127.0.0.1", sentry.port, timeout=5)
        connection.request("POST", "/api/2/envelope/", body=iter([NODE_SESSION[:100], NODE_SESSION[100:]]),
                           encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        assert connection.getresponse().status == 200
        connection.close()
        store = {"event_id": "s1", "release": "green@abc1234", "tags": [["color", "green"]],
                 "exception": [{"type": "TypeError"}]}
        assert requests.post(f"{sentry.url}/api/2/store/", json=store, timeout=5).status_code == 200
        assert requests.post(f"{sentry.url}/api/2/envelope/", data=b"garbage", timeout=5).status_code == 400
        assert requests.post(f"{sentry.url}/api/x/envelope/", data=b"{}", timeout=5).status_code == 404
        assert sentry.stats() == {"events": 3, "items": {"event": 3, "session": 1}, "rejected": 1}
        query = requests.get(f"{sentry.url}/api/0/organizations/sandbox/events/", timeout=5, params={
            "field": ["tags[color]", "error.type", "count()"], "project": ["2"]}).json()
        assert sorted(map(json.dumps, query["data"])) == sorted(map(json.dumps, [
            {"tags[color]": "green", "error.type": ["InjectedFaultError"], "count()": 1},
            {"tags[color]": "green", "error.type": ["TypeError"], "count()": 1}]))
        refused = requests.get(f"{sentry.url}/api/0/organizations/sandbox/events/", params={"field": "title"}, timeout=5)
        assert refused.status_code == 400 and "count()" in refused.json()["detail"]
    # A restarted receiver answers for what it had kept.
    with SentryReceiver(out=out) as again:
        assert again.count == 3
        assert {event.color for event in again.events()} == {"blue", "green"}


def test_a_traced_request_is_kept_as_a_transaction_with_its_route_duration_and_spans():
    events, (transaction,), seen = items_from_envelope(NODE_TRANSACTION, "2", received_at=0.0)
    assert events == [] and seen == {"transaction": 1}
    assert (transaction.name, transaction.op, transaction.color) == ("GET /api/orders/:id(^\\d{1,18}$)", "http.server", "green")
    assert transaction.duration_ms == pytest.approx(23.65, abs=0.01)
    assert transaction.span_ops == ("request_handler.fastify", "hook.fastify")
    summary = summarise_transactions([transaction], "green", since=0.0)
    assert summary["transactions"][transaction.name]["count"] == 1
    assert summary["span_ops"] == {"request_handler.fastify": 1, "hook.fastify": 1}
    assert summarise_transactions([transaction], "blue", since=0.0)["transactions"] == {}
    with SentryReceiver() as sentry:
        requests.post(f"{sentry.url}/api/2/envelope/", data=NODE_TRANSACTION, timeout=5)
        traces = requests.get(f"{sentry.url}/traces", params={"color": "green"}, timeout=5).json()
        assert list(traces["transactions"]) == [transaction.name] and sentry.count == 0
