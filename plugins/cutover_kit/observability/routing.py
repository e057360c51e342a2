"""Stage 4's alert-routing check, pure: the synthetic test alert, and whether it reached the
receiver it should (Alertmanager's own routing, then, where a readback exists, the delivery).

The test alert is a critical alert for green (the route that pages the war room), made unique by
the label ``cutover_routing_test``; cutover_kit.alerting never judges an alert carrying that label,
so the test can never fail a gate. It is posted with an end time a few minutes out, so even a
check that dies half-way leaves nothing firing for long; the check resolves it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from cutover_kit.alerting import SYNTHETIC_LABEL

TEST_ALERT_NAME = "CutoverAlertRoutingTest"
TEST_ALERT_LIFETIME_SECONDS = 180


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def synthetic_alert(test_id: str, now: float, *, resolved: bool = False) -> dict[str, Any]:
    """The postable alert (Alertmanager API v2). ``resolved``: the same alert ending now."""
    if not test_id or not all(ch.isalnum() or ch in "-_.:+" for ch in test_id):
        raise ValueError(f"test alert id must be non-empty [A-Za-z0-9-_.:+], got {test_id!r}")
    ends = now if resolved else now + TEST_ALERT_LIFETIME_SECONDS
    return {
        "labels": {"alertname": TEST_ALERT_NAME, "color": "green", "severity": "page", SYNTHETIC_LABEL: test_id},
        "annotations": {"summary": "stage 4 routing test (synthetic; never judged by a gate)"},
        # startsAt stays the same in the resolving post, so Alertmanager updates the same alert.
        "startsAt": _rfc3339(now if not resolved else now - 1),
        "endsAt": _rfc3339(ends),
    }


@dataclass(frozen=True)
class RoutingResult:
    ok: bool
    line: str


def _carries(alert: Any, test_id: str) -> bool:
    return isinstance(alert, dict) and isinstance(alert.get("labels"), dict) and alert["labels"].get(SYNTHETIC_LABEL) == test_id


def routed_receivers(alerts_answer: Any, test_id: str) -> list[str] | None:
    """Receivers Alertmanager gave the test alert (its /api/v2/alerts answer); None while it is not listed."""
    for alert in alerts_answer if isinstance(alerts_answer, list) else ():
        if _carries(alert, test_id):
            return sorted(str(receiver.get("name")) for receiver in alert.get("receivers") or () if isinstance(receiver, dict))
    return None


def judge_routing(receivers: list[str], expected: str, test_id: str) -> RoutingResult:
    """Alertmanager's own routing decision for the test alert."""
    if expected in receivers:
        return RoutingResult(True, f"Alertmanager routed test alert {test_id} to {expected!r}")
    return RoutingResult(False, f"Alertmanager routed test alert {test_id} to {receivers or 'no receiver'}, "
                                f"expected {expected!r}: a critical green alert would not page the war room")


def delivered_to(readback: list[dict[str, Any]], test_id: str) -> list[str]:
    """Receivers whose webhook posts (the readback entries: {path, body, received_at}) carry the
    firing test alert, in arrival order. Alertmanager's webhook body names its receiver."""
    found = []
    for entry in readback:
        body = entry.get("body") if isinstance(entry, dict) else None
        if not isinstance(body, dict):
            continue
        alerts = body.get("alerts") if isinstance(body.get("alerts"), list) else []
        if any(_carries(alert, test_id) and alert.get("status") == "firing" for alert in alerts):
            found.append(str(body.get("receiver")))
    return found


def judge_delivery(receivers: list[str], expected: str, test_id: str, waited_seconds: float) -> RoutingResult:
    """The end-to-end verdict from the webhook readback."""
    if expected in receivers:
        return RoutingResult(True, f"test alert {test_id} delivered to receiver {expected!r} in {waited_seconds:.1f} s "
                                   f"(read back from the webhook receiver)")
    if receivers:
        return RoutingResult(False, f"test alert {test_id} delivered to {sorted(set(receivers))}, not to {expected!r}")
    return RoutingResult(False, f"test alert {test_id} not delivered to {expected!r} within {waited_seconds:.0f} s: "
                                f"Alertmanager accepted it but no webhook post carried it (receiver down or misrouted?)")
