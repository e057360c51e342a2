"""The Alertmanager gate input on answers recorded from a real Alertmanager 0.25.

Recorded by hand: prometheus-alertmanager with include/alertmanager/alertmanager.yml.tmpl
(rendered) and a throwaway Prometheus whose stand-in rules fire ErrorBudgetBurnFast (page) and
ErrorBudgetBurnSlow (ticket) for green and ErrorBudgetBurnSlow for blue. In the first answer the
green ticket is suppressed, inhibited by the green page (the config's inhibit rule); in the second
a silence was added for the green page too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover_kit.alerting import AlertAnswerError, judge_alerts, parse_alerts
from cutover_kit.slo import Verdict

DATA = Path(__file__).parent / "data"


def recorded(name: str) -> list:
    return json.loads((DATA / name).read_text())


def test_recorded_answer_parses_with_states_from_the_inhibit_rule() -> None:
    alerts = {(a.name, a.color): a for a in parse_alerts(recorded("alertmanager_alerts_green_page.json"))}
    assert alerts[("ErrorBudgetBurnFast", "green")].state == "active"
    assert alerts[("ErrorBudgetBurnFast", "green")].severity == "page"
    assert alerts[("ErrorBudgetBurnSlow", "green")].state == "suppressed"
    assert alerts[("ErrorBudgetBurnSlow", "blue")].state == "active"


def test_critical_alert_firing_for_green_fails_with_its_name_in_the_reason() -> None:
    judgement = judge_alerts(parse_alerts(recorded("alertmanager_alerts_green_page.json")), "green")
    assert judgement.verdict is Verdict.FAIL
    assert judgement.reason == ("critical alert firing for green: ErrorBudgetBurnFast (green burns the 1 % error "
                                "budget at >= 14.4x: 19.67% 5xx over 1 h (and over 5 m))")
    assert judgement.doubts == ()


def test_blue_with_only_a_ticket_passes_and_says_so() -> None:
    judgement = judge_alerts(parse_alerts(recorded("alertmanager_alerts_green_page.json")), "blue")
    assert judgement.verdict is Verdict.PASS
    assert judgement.reason == "no critical alert firing for blue (tickets open: ErrorBudgetBurnSlow)"


def test_silenced_page_does_not_fail_but_is_named_in_the_doubts() -> None:
    judgement = judge_alerts(parse_alerts(recorded("alertmanager_alerts_green_page_silenced.json")), "green")
    assert judgement.verdict is Verdict.PASS
    assert judgement.reason == "no critical alert firing for green"  # its ticket is inhibited, not active
    assert judgement.doubts == ("critical alert ErrorBudgetBurnFast for green is suppressed (silenced or inhibited), not judged",)


def test_no_alert_passes() -> None:
    judgement = judge_alerts(parse_alerts([]), "green")
    assert (judgement.verdict, judgement.reason) == (Verdict.PASS, "no critical alert firing for green")


def test_severity_critical_counts_as_page_and_every_firing_alert_is_named() -> None:
    answer = recorded("alertmanager_alerts_green_page.json")
    extra = json.loads(json.dumps(answer[1]))
    extra["labels"].update(alertname="GreenDataCorruption", severity="critical")
    extra["annotations"] = {}
    judgement = judge_alerts(parse_alerts([*answer, extra]), "green")
    assert judgement.verdict is Verdict.FAIL
    assert len(judgement.breaches) == 2
    assert judgement.breaches[1] == "critical alert firing for green: GreenDataCorruption"


@pytest.mark.parametrize(("answer", "message"), [
    ({"alerts": []}, "must be a JSON list, got dict"),
    (["x"], "alert #0 is not an object"),
    ([{"labels": {}, "status": {"state": "active"}}], "alert #0 has no labels.alertname"),
    ([{"labels": {"alertname": "A"}, "status": {"state": "firing"}}], "alert #0 (A) has status.state 'firing'"),
    ([{"labels": {"alertname": "A"}}], "alert #0 (A) has status.state None"),
])
def test_an_answer_of_another_shape_is_an_error_not_a_pass(answer: object, message: str) -> None:
    with pytest.raises(AlertAnswerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_alerts(answer)
