"""Alertmanager as an input of every SLO gate poll: the one rule joining its answer to the SLO verdict.

- No Connection configured: the gate judges as before and its line says alerts were not consulted.
- An active critical alert for green: FAIL, and the gate halts at once (no consecutive-breach
  wait). An alert rule already waited out its own noise: its ``for:`` clause, its windows
  (a burn-rate page needs both the long and the short window over the threshold) and, for the
  10 s pages of include/prometheus/rules/cutover.yml, evidence floors matching this package's
  judge (a Wilson lower bound and error/request counts; 100 samples per p95). Waiting
  ``consecutive_breaches`` more polls would add seconds of user-facing errors and no evidence.
- Alertmanager unreadable (down, timeout, an answer not in the v2 shape): a PASS becomes
  INCONCLUSIVE (a gate never passes on an unknown); it never excuses a breach the SLOs found.
- Otherwise the SLO verdict stands; the line adds what Alertmanager said (tickets open, silenced pages).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cutover_kit.alerting import AlertAnswerError, judge_alerts, parse_alerts
from cutover_kit.runbooks import with_runbook
from cutover_kit.slo import Judgement, Verdict


@dataclass(frozen=True)
class AlertCheck:
    """What one poll learnt from Alertmanager. ``judgement`` is None when it was not consulted
    (``note`` says why) or could not be read (``error`` says why)."""

    judgement: Judgement | None = None
    note: str = ""
    error: str | None = None

    @property
    def halts(self) -> bool:
        return self.judgement is not None and self.judgement.verdict is Verdict.FAIL

    def apply_to(self, slo: Judgement) -> Judgement:
        """The poll's judgement once Alertmanager's answer is added (a halting check is handled
        before the SLOs are measured, with :func:`alert_halt_line`)."""
        if self.error is not None:
            verdict = Verdict.INCONCLUSIVE if slo.verdict is Verdict.PASS else slo.verdict
            return Judgement(verdict, f"{slo.reason}; alerts unknown: {self.error}", slo.breaches, slo.doubts)
        if self.judgement is None:
            return Judgement(slo.verdict, f"{slo.reason}; {self.note}", slo.breaches, slo.doubts)
        return Judgement(slo.verdict, f"{slo.reason}; alerts: {self.judgement.reason}", slo.breaches,
                         slo.doubts + self.judgement.doubts)

    def to_dict(self) -> dict[str, Any]:
        return {"consulted": self.judgement is not None or self.error is not None,
                "judgement": self.judgement.to_dict() if self.judgement else None, "note": self.note, "error": self.error}


def not_consulted(conn_id: str) -> AlertCheck:
    return AlertCheck(note=f"alerts not consulted (no Connection {conn_id!r})")


def unreadable(error: str) -> AlertCheck:
    return AlertCheck(error=error)


def check_answer(answer: Any, color: str = "green") -> AlertCheck:
    """Alertmanager's /api/v2/alerts JSON -> the poll's AlertCheck (an answer of the wrong shape is unreadable)."""
    try:
        alerts = parse_alerts(answer)
    except AlertAnswerError as error:
        return unreadable(str(error))
    return AlertCheck(judgement=judge_alerts(alerts, color))


def alert_halt_line(step_label: str, check: AlertCheck) -> str:
    """The gate's line for a critical alert, e.g. 'Halt at 25 %: critical alert firing for green:
    ErrorBudgetBurnFast (...) (a critical alert halts at once)'."""
    if not check.halts:
        raise ValueError("alert_halt_line needs a check whose verdict is FAIL")
    return with_runbook(f"Halt at {step_label}: {check.judgement.reason} (a critical alert halts at once)")
