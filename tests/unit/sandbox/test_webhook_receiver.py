"""The webhook receiver's readback (GET /received) on a real local server: filters, masking,
bad queries, and a restart that keeps what arrived before it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from sandbox.webhook_receiver import ReadbackQueryError, WebhookReceiver, parse_readback_query


def test_readback_filters_by_path_prefix_and_arrival_time(tmp_path: Path) -> None:
    with WebhookReceiver(out=tmp_path / "received.jsonl") as receiver:
        requests.post(f"{receiver.url}/hooks/smoke", json={"text": "smoke"}, timeout=2)
        between = time.time()
        requests.post(f"{receiver.url}/alertmanager/green-page", json={"receiver": "green-page"}, timeout=2,
                      headers={"Authorization": "Bearer s3cret"})
        requests.post(f"{receiver.url}/hooks/cutover", json={"text": "cutover"}, timeout=2)
        everything = requests.get(f"{receiver.url}/received", timeout=2).json()["received"]
        hooks = requests.get(f"{receiver.url}/received", params={"path_prefix": "/hooks/"}, timeout=2).json()["received"]
        recent = requests.get(f"{receiver.url}/received", params={"since": between}, timeout=2).json()["received"]
    assert [entry["path"] for entry in everything] == ["/hooks/smoke", "/alertmanager/green-page", "/hooks/cutover"]
    assert [entry["body"]["text"] for entry in hooks] == ["smoke", "cutover"]
    assert [entry["path"] for entry in recent] == ["/alertmanager/green-page", "/hooks/cutover"]
    assert recent[0]["headers"]["Authorization"] == "<masked>"
    assert all(entry["received_at"] >= between for entry in recent)
    # The in-process list keeps the real header (tests check what a notifier sent).
    assert receiver.received[1]["headers"]["Authorization"] == "Bearer s3cret"


def test_a_restarted_receiver_still_answers_for_earlier_posts(tmp_path: Path) -> None:
    out = tmp_path / "received.jsonl"
    with WebhookReceiver(out=out) as first:
        requests.post(f"{first.url}/hooks/cutover", json={"text": "before restart"}, timeout=2)
    with WebhookReceiver(out=out) as second:
        answer = requests.get(f"{second.url}/received", timeout=2).json()["received"]
    assert [entry["body"]["text"] for entry in answer] == ["before restart"]


def test_bad_readback_queries_are_refused_with_the_reason() -> None:
    with WebhookReceiver() as receiver:
        bad_since = requests.get(f"{receiver.url}/received?since=yesterday", timeout=2)
        unknown = requests.get(f"{receiver.url}/received?colour=green", timeout=2)
        elsewhere = requests.get(f"{receiver.url}/nothing", timeout=2)
        health = requests.get(f"{receiver.url}/healthz", timeout=2)
    assert bad_since.status_code == 400 and "since must be a Unix timestamp" in bad_since.json()["error"]
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]
    assert elsewhere.status_code == 404
    assert health.json() == {"ok": True}


def test_parse_readback_query() -> None:
    assert parse_readback_query("") == ("", None)
    assert parse_readback_query("path_prefix=/alertmanager/&since=1700000000.5") == ("/alertmanager/", 1700000000.5)
    with pytest.raises(ReadbackQueryError, match="must start with '/'"):
        parse_readback_query("path_prefix=hooks")
