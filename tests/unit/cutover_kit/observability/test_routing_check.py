"""Stage 4's routing check, pure: the synthetic alert, Alertmanager's routing decision, the delivery."""

from __future__ import annotations

import pytest

from cutover_kit.observability.routing import (
    TEST_ALERT_NAME, delivered_to, judge_delivery, judge_routing, routed_receivers, synthetic_alert,
)


def test_the_test_alert_is_a_unique_critical_green_alert_that_expires_by_itself() -> None:
    alert = synthetic_alert("run1-abc", 1_800_000_000.0)
    assert alert["labels"] == {"alertname": TEST_ALERT_NAME, "color": "green", "severity": "page",
                               "cutover_routing_test": "run1-abc"}
    assert alert["startsAt"] == "2027-01-15T08:00:00.000Z" and alert["endsAt"] == "2027-01-15T08:03:00.000Z"
    resolved = synthetic_alert("run1-abc", 1_800_000_010.0, resolved=True)
    assert resolved["endsAt"] == "2027-01-15T08:00:10.000Z" and resolved["labels"] == alert["labels"]


def test_a_test_id_with_matcher_syntax_is_refused() -> None:
    with pytest.raises(ValueError, match="test alert id"):
        synthetic_alert('x",severity="ticket', 0.0)


ANSWER = [
    {"labels": {"alertname": "Other", "cutover_routing_test": "older"}, "receivers": [{"name": "ticket"}]},
    {"labels": {"alertname": TEST_ALERT_NAME, "cutover_routing_test": "t1"}, "receivers": [{"name": "green-page"}]},
]


def test_routing_decision_is_read_for_this_test_only() -> None:
    assert routed_receivers(ANSWER, "t1") == ["green-page"]
    assert routed_receivers(ANSWER, "t2") is None
    assert judge_routing(["green-page"], "green-page", "t1").ok
    wrong = judge_routing(["ticket"], "green-page", "t1")
    assert not wrong.ok and "routed test alert t1 to ['ticket'], expected 'green-page'" in wrong.line


def post(receiver: str, test_id: str, status: str = "firing") -> dict:
    return {"path": f"/alertmanager/{receiver}", "received_at": 1.0,
            "body": {"receiver": receiver, "status": status,
                     "alerts": [{"status": status, "labels": {"cutover_routing_test": test_id}}]}}


def test_delivery_is_read_back_from_the_webhook_posts() -> None:
    readback = [post("ticket", "other"), post("green-page", "t1"), post("page", "t1", status="resolved"), {"body": "x"}]
    assert delivered_to(readback, "t1") == ["green-page"]
    assert judge_delivery(["green-page"], "green-page", "t1", 0.4).line == (
        "test alert t1 delivered to receiver 'green-page' in 0.4 s (read back from the webhook receiver)")
    misrouted = judge_delivery(["page"], "green-page", "t1", 2.0)
    assert not misrouted.ok and "delivered to ['page'], not to 'green-page'" in misrouted.line
    lost = judge_delivery([], "green-page", "t1", 15.0)
    assert not lost.ok and "not delivered to 'green-page' within 15 s" in lost.line
