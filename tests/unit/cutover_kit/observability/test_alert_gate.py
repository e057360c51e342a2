"""How Alertmanager's answer joins the SLO verdict (cutover_kit.observability.alert_gate), on
answers recorded from a real Alertmanager 0.25."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover_kit.observability.alert_gate import alert_halt_line, check_answer, not_consulted, unreadable
from cutover_kit.slo import Judgement, Verdict

DATA = Path(__file__).resolve().parents[1] / "data"
GREEN_PAGE = json.loads((DATA / "alertmanager_alerts_green_page.json").read_text())
SILENCED = json.loads((DATA / "alertmanager_alerts_green_page_silenced.json").read_text())
SLO_PASS = Judgement(Verdict.PASS, "green 5xx 0.0 % <= 1.0 %")
SLO_FAIL = Judgement(Verdict.FAIL, "green 5xx 3.0 % > 1.0 %", ("green 5xx 3.0 % > 1.0 %",))


def test_a_critical_green_alert_halts_naming_it() -> None:
    check = check_answer(GREEN_PAGE)
    assert check.halts
    line = alert_halt_line("25 %", check)
    assert line.startswith("Halt at 25 %: critical alert firing for green: ErrorBudgetBurnFast (green burns")
    assert "(a critical alert halts at once)" in line and "runbook: docs/runbooks/rollback.md#critical-alert-firing" in line


def test_a_silenced_page_does_not_halt_and_is_named_in_the_doubts() -> None:
    check = check_answer(SILENCED)
    assert not check.halts
    joined = check.apply_to(SLO_PASS)
    assert joined.verdict is Verdict.PASS and "alerts: no critical alert firing for green" in joined.reason
    assert any("suppressed" in doubt for doubt in joined.doubts)


def test_no_alerts_keeps_the_slo_verdict_and_says_so() -> None:
    joined = check_answer([]).apply_to(SLO_FAIL)
    assert joined.verdict is Verdict.FAIL and joined.breaches == SLO_FAIL.breaches
    assert joined.reason == "green 5xx 3.0 % > 1.0 %; alerts: no critical alert firing for green"


@pytest.mark.parametrize("answer", [{"status": "error"}, [{"labels": {}}]], ids=["not a list", "no alertname"])
def test_an_answer_of_the_wrong_shape_is_unreadable_never_a_pass(answer) -> None:
    check = check_answer(answer)
    assert not check.halts and check.error
    assert check.apply_to(SLO_PASS).verdict is Verdict.INCONCLUSIVE


def test_an_unreadable_alertmanager_makes_a_pass_inconclusive_and_never_excuses_a_breach() -> None:
    check = unreadable("Alertmanager could not be read: GET http://127.0.0.1:1/api/v2/alerts failed")
    passed = check.apply_to(SLO_PASS)
    assert passed.verdict is Verdict.INCONCLUSIVE and "alerts unknown: Alertmanager could not be read" in passed.reason
    assert check.apply_to(SLO_FAIL).verdict is Verdict.FAIL


def test_without_the_connection_the_line_says_alerts_were_not_consulted() -> None:
    joined = not_consulted("alertmanager_default").apply_to(SLO_PASS)
    assert joined.verdict is Verdict.PASS
    assert joined.reason.endswith("; alerts not consulted (no Connection 'alertmanager_default')")


def test_the_routing_test_alert_is_never_judged() -> None:
    synthetic = json.loads(json.dumps(GREEN_PAGE))
    for alert in synthetic:
        alert["labels"]["cutover_routing_test"] = "run-1"
    assert not check_answer(synthetic).halts


def test_halt_line_refuses_a_check_that_does_not_halt() -> None:
    with pytest.raises(ValueError):
        alert_halt_line("25 %", check_answer([]))
