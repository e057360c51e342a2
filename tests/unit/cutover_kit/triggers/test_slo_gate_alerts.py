"""SLOGateTrigger consults Alertmanager on every poll (through its two seams): a critical green
alert halts at once naming it, an unreadable Alertmanager never lets a poll pass, and without the
Connection the gate judges as before and its line says alerts were not consulted."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from cutover_kit.hooks.alertmanager import AlertmanagerUnavailable
from cutover_kit.plan import load_plan
from cutover_kit.triggers.slo_gate import SLOGateTrigger

PLAN = {**load_plan("rehearsal").to_dict(), "poll_interval_seconds": 0.2}
GREEN_PAGE = json.loads((Path(__file__).resolve().parents[1] / "data" / "alertmanager_alerts_green_page.json").read_text())


def gate(source, *, alerts=None, configured=True, healthy_before=0.0, step_timeout=40.0):
    """``alerts(poll)``: Alertmanager's answer on that poll (or raises)."""
    now = time.time()
    trigger = SLOGateTrigger(
        step_label="25 %", plan=PLAN, bake_seconds=1, step_timeout_seconds=healthy_before + step_timeout,
        gate_started_at=now - healthy_before, weights_set_at=now - healthy_before,
        haproxy_conn_id="haproxy_default", alertmanager_conn_id="alertmanager_default",
    )
    polls = iter(range(1000))
    trigger._metrics_source = lambda: source
    trigger._alertmanager_connection_exists = lambda: configured
    trigger._read_alerts = lambda: alerts(next(polls))
    trigger.rollbacks = []
    trigger._reflex_rollback = lambda event, backend: trigger.rollbacks.append(event["status"])
    return trigger


def run(trigger) -> dict:
    async def every_event():
        return [event.payload async for event in trigger.run()]

    [event] = asyncio.run(asyncio.wait_for(every_event(), timeout=5))
    return event


def test_a_critical_green_alert_halts_at_once_naming_it_and_rolls_back(prometheus, answers):
    trigger = gate(prometheus(answers.healthy()), alerts=lambda poll: GREEN_PAGE if poll >= 1 else [])
    event = run(trigger)
    assert event["status"] == "failed" and event["verdict"] == "FAIL"
    assert event["polls"] == 2  # one healthy poll, then the alert: no consecutive-breach wait
    assert event["line"].startswith("Halt at 25 %: critical alert firing for green: ErrorBudgetBurnFast (green burns")
    assert "rollback.md#critical-alert-firing" in event["line"]
    assert trigger.rollbacks == ["failed"]
    assert event["alerts"]["consulted"] and event["alerts"]["judgement"]["verdict"] == "FAIL"  # in the gate's XCom


def test_an_unreadable_alertmanager_never_promotes(prometheus, answers):
    def down(poll):
        raise AlertmanagerUnavailable("GET http://127.0.0.1:1/api/v2/alerts failed: ConnectionError")
    trigger = gate(prometheus(answers.healthy()), alerts=down, healthy_before=3.0, step_timeout=0.3)
    event = run(trigger)
    assert event["status"] == "inconclusive" and event["verdict"] == "INCONCLUSIVE"
    assert "alerts unknown: Alertmanager could not be read: GET http://127.0.0.1:1/api/v2/alerts" in event["reason"]


def test_quiet_alerts_let_a_healthy_gate_promote_and_the_line_says_so(prometheus, answers):
    event = run(gate(prometheus(answers.healthy()), alerts=lambda poll: [], healthy_before=3.0))
    assert event["status"] == "success"
    assert "; alerts: no critical alert firing for green" in event["line"]


def test_without_the_connection_alerts_are_not_consulted_and_the_line_says_so(prometheus, answers):
    def never(poll):
        raise AssertionError("Alertmanager must not be read without its Connection")
    event = run(gate(prometheus(answers.healthy()), alerts=never, configured=False, healthy_before=3.0))
    assert event["status"] == "success"
    assert "alerts not consulted (no Connection 'alertmanager_default')" in event["line"]
    assert event["alerts"] == {"consulted": False, "judgement": None, "error": None,
                               "note": "alerts not consulted (no Connection 'alertmanager_default')"}
