"""rehearsal-result.json's `notifications`: read back from a real webhook receiver over its GET
/received, only the cutover's endpoint, in arrival order, as {at, kind, step, text, ...}."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from cutover_kit.cutover_notices import CutoverNotice, notice_payload
from sandbox.notifications import notifications_from_received, read_notifications
from sandbox.webhook_receiver import WebhookReceiver


def post(url: str, path: str, body: dict) -> None:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_read_back_keeps_the_cutovers_notices_in_order():
    halt = CutoverNotice(kind="gate_decision", text="Halt at 25 %: green 5xx 3.2 % > 1.0 %", dag_id="cutover",
                         run_id="r1", step="25 %", task_id="stage_10_traffic_migration.step_25.slo_gate", try_number=1, at=100.0)
    rollback = CutoverNotice(kind="rollback", text="Rolled back after 25 % in 0.40 s", dag_id="cutover", run_id="r1",
                             step="25 %", task_id="rollback.verify_blue_serving", try_number=1, at=101.0)
    with WebhookReceiver() as receiver:
        since = time.time()
        post(receiver.url, "/hooks/smoke", {"text": "Smoke FAILED: not a cutover notice"})
        post(receiver.url, "/hooks/cutover", notice_payload(halt))
        post(receiver.url, "/hooks/cutover", notice_payload(rollback))
        post(receiver.url, "/hooks/cutover", {"text": "posted by hand"})
        notices = read_notifications(receiver.url, since)
    assert [(n["kind"], n["step"], n["text"], n["at"]) for n in notices] == [
        ("gate_decision", "25 %", "Halt at 25 %: green 5xx 3.2 % > 1.0 %", 100.0),
        ("rollback", "25 %", "Rolled back after 25 % in 0.40 s", 101.0),
        (None, None, "posted by hand", notices[2]["at"]),
    ]
    assert notices[0]["run_id"] == "r1" and notices[0]["try_number"] == 1
    assert notices[2]["at"] >= since  # a hand-made post keeps the receiver's arrival time


def test_nothing_received_and_an_unreachable_receiver():
    assert notifications_from_received([]) == []
    with WebhookReceiver() as receiver:
        url = receiver.url
        assert read_notifications(url) == []
    with pytest.raises(OSError):
        read_notifications(url)
