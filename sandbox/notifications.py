"""The cutover's notifications as the sandbox's webhook receiver kept them, for rehearsal-result.json's
``notifications`` list: each {at, kind, step, text} in arrival order (docs/testing.md).

The receiver (sandbox/webhook_receiver.py, the ``webhooks`` component) answers
``GET /received?path_prefix=/hooks/cutover&since=<unix seconds>``; each body is the notifier's
Slack-compatible payload whose ``cutover`` block says what it was (cutover_kit.cutover_notices)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

CUTOVER_ENDPOINT = "/hooks/cutover"  # where the sandbox's cutover_notifications Connection posts
READ_TIMEOUT_SECONDS = 5.0


def notifications_from_received(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """{at, kind, step, text} per received cutover notice; a body without a ``cutover`` block (a
    hand-made post) keeps its text with kind None, so nothing the receiver got is hidden."""
    notifications = []
    for entry in entries:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        facts = body.get("cutover") if isinstance(body.get("cutover"), dict) else {}
        notifications.append({
            "at": facts.get("at", entry.get("received_at")),
            "kind": facts.get("kind"),
            "step": facts.get("step"),
            "text": facts.get("text") or body.get("text"),
            "run_id": facts.get("run_id"),
            "task_id": facts.get("task_id"),
            "try_number": facts.get("try_number"),
        })
    return notifications


def read_notifications(webhooks_url: str, since: float | None = None) -> list[dict[str, Any]]:
    """The cutover notices the receiver at `webhooks_url` got since `since`. Raises OSError or
    ValueError when the receiver cannot be read (the rehearsal records that instead)."""
    query = {"path_prefix": CUTOVER_ENDPOINT} | ({"since": f"{since:.3f}"} if since is not None else {})
    url = f"{webhooks_url}/received?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=READ_TIMEOUT_SECONDS) as response:  # noqa: S310 - the sandbox's loopback receiver
        payload = json.loads(response.read())
    return notifications_from_received(payload.get("received", []))
