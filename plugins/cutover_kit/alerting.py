"""Alertmanager's alerts as a gate input: GET /api/v2/alerts in, a Judgement for one color out.

Pure (no Airflow, no I/O): the caller fetches the answer; this module parses and judges it.

Severities come from include/prometheus/rules/ (``page`` = critical, ``ticket`` = a human looks
later; ``critical`` is accepted as a synonym of ``page`` for hand-written rules). Rules:

- an *active* critical alert labelled with the judged color is a FAIL; the reason names every such
  alert (name and summary), e.g. ``critical alert firing for green: ErrorBudgetBurnFast (green
  burns the 1 % error budget at >= 14.4x: ...)``;
- a *suppressed* critical alert (silenced by a person, or inhibited) does not fail the step: a
  silence is a decision someone made in Alertmanager. It is named in the doubts, so the log shows
  it;
- tickets, other colors' alerts and alerts without a ``color`` label never fail it (blue's own
  regressions are stage 12's blue-SLO rule); tickets of the judged color are named in the PASS
  reason;
- an alert labelled ``cutover_routing_test`` is stage 4's synthetic routing test
  (cutover_kit.observability.routing): never judged.

An answer that is not Alertmanager's v2 shape raises AlertAnswerError naming what is wrong, before
any decision: a gate must not PASS on an answer it could not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cutover_kit.slo import Judgement, Verdict

CRITICAL_SEVERITIES = frozenset({"page", "critical"})
# Stage 4's synthetic test alert carries this label (its value: the test's id); never judged.
SYNTHETIC_LABEL = "cutover_routing_test"
ALERT_STATES = ("active", "suppressed", "unprocessed")


class AlertAnswerError(ValueError):
    """The /api/v2/alerts answer does not have the documented shape; the message says where."""


@dataclass(frozen=True)
class Alert:
    name: str
    color: str | None
    severity: str | None
    state: str  # active | suppressed | unprocessed (Alertmanager's status.state)
    summary: str
    starts_at: str
    synthetic: bool = False

    @property
    def critical(self) -> bool:
        return self.severity in CRITICAL_SEVERITIES

    def describe(self) -> str:
        return f"{self.name} ({self.summary})" if self.summary else self.name


def parse_alerts(answer: Any) -> list[Alert]:
    """Alertmanager's /api/v2/alerts JSON (a list of gettableAlert) -> Alerts, in answer order."""
    if not isinstance(answer, list):
        raise AlertAnswerError(f"Alertmanager /api/v2/alerts answer must be a JSON list, got {type(answer).__name__}")
    alerts = []
    for index, raw in enumerate(answer):
        where = f"Alertmanager alert #{index}"
        if not isinstance(raw, dict):
            raise AlertAnswerError(f"{where} is not an object: {raw!r}")
        labels, status = raw.get("labels"), raw.get("status")
        if not isinstance(labels, dict) or not labels.get("alertname"):
            raise AlertAnswerError(f"{where} has no labels.alertname")
        if not isinstance(status, dict) or status.get("state") not in ALERT_STATES:
            raise AlertAnswerError(f"{where} ({labels['alertname']}) has status.state {None if not isinstance(status, dict) else status.get('state')!r}, "
                                   f"expected one of {ALERT_STATES}")
        annotations = raw.get("annotations") if isinstance(raw.get("annotations"), dict) else {}
        alerts.append(Alert(
            name=str(labels["alertname"]),
            color=labels.get("color"),
            severity=labels.get("severity"),
            state=status["state"],
            summary=" ".join(str(annotations.get("summary") or "").split()),
            starts_at=str(raw.get("startsAt") or ""),
            synthetic=SYNTHETIC_LABEL in labels,
        ))
    return alerts


def judge_alerts(alerts: Sequence[Alert], color: str = "green") -> Judgement:
    """FAIL when a critical alert is active for ``color``; otherwise PASS (see module doc)."""
    mine = [alert for alert in alerts if alert.color == color and not alert.synthetic]
    firing = [alert for alert in mine if alert.critical and alert.state == "active"]
    suppressed = tuple(f"critical alert {alert.name} for {color} is suppressed (silenced or inhibited), not judged"
                       for alert in mine if alert.critical and alert.state == "suppressed")
    if firing:
        breaches = tuple(f"critical alert firing for {color}: {alert.describe()}" for alert in firing)
        return Judgement(Verdict.FAIL, "; ".join(breaches), breaches, suppressed)
    tickets = sorted({alert.name for alert in mine if not alert.critical and alert.state == "active"})
    reason = f"no critical alert firing for {color}"
    if tickets:
        reason += f" (tickets open: {', '.join(tickets)})"
    return Judgement(Verdict.PASS, reason, (), suppressed)
