"""SLOGateTrigger.run() without Prometheus, Redis, HAProxy or a scheduler: the real hook parses
canned answers (tests/unit/conftest.py), and the emergency-stop reader and the reflex rollback are
replaced through the trigger's seams. Small timings: a poll every 0.2 s (the plan's minimum)."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests

from cutover_kit.control import CutoverStateError, EmergencyStop
from cutover_kit.plan import load_plan
from cutover_kit.triggers.slo_gate import SLOGateTrigger

PLAN = {**load_plan("rehearsal").to_dict(), "poll_interval_seconds": 0.2}
STEP_TIMEOUT = 0.3  # three polls


class Reflex:
    """Stands in for the reflex rollback; records what the event held when it ran."""

    def __init__(self, raises: Exception | None = None) -> None:
        self.calls: list[tuple[dict, str | None]] = []
        self.raises = raises

    def __call__(self, event: dict, flag_backend: str | None) -> None:
        self.calls.append((dict(event), flag_backend))
        if self.raises:
            raise self.raises
        event["flags_restored_at"] = time.time()
        event["traffic_restored_at"] = time.time()
        event["weights_after_rollback"] = {"blue": 100, "green": 0}


def gate(source, *, stops=lambda poll: None, plan=PLAN, reflex=None, healthy_before=0.0, step_timeout=STEP_TIMEOUT):
    """A trigger wired to fakes. ``stops(poll)`` returns the latched stop (or raises) on each poll;
    ``healthy_before`` starts the gate that long ago, so a first PASS already covers the 1 s bake;
    the step times out ``step_timeout`` seconds after this call."""
    now = time.time()
    trigger = SLOGateTrigger(
        step_label="25 %", plan=plan, bake_seconds=1, step_timeout_seconds=healthy_before + step_timeout,
        gate_started_at=now - healthy_before, weights_set_at=now - healthy_before,
        haproxy_conn_id="haproxy_default", state_conn_id="redis_default",
    )
    polls = iter(range(1000))
    trigger._metrics_source = lambda: source
    trigger._read_emergency_stop = lambda: stops(next(polls))
    trigger._reflex_rollback = reflex if reflex is not None else Reflex()
    return trigger


def run(trigger) -> dict:
    async def every_event():
        return [event.payload async for event in trigger.run()]

    events = asyncio.run(asyncio.wait_for(every_event(), timeout=5))
    assert len(events) == 1, events  # exactly one verdict per gate
    return events[0]


def test_promotes_after_a_healthy_bake_and_moves_nothing(prometheus, answers):
    trigger = gate(prometheus(answers.healthy()), healthy_before=3.0, step_timeout=40)
    event = run(trigger)
    assert event["status"] == "success" and event["verdict"] == "PASS", event["line"]
    assert event["line"].startswith("Promote past 25 %: green 5xx 0.0 %")
    assert event["measurements"]["green"]["requests"] == 1000
    assert trigger._reflex_rollback.calls == []  # a pass rolls nothing back


def test_halts_on_green_errors_and_rolls_back_flags_then_traffic_before_the_event(prometheus, answers):
    trigger = gate(prometheus(answers.healthy(green_errors="100")), step_timeout=40)
    event = run(trigger)
    assert event["status"] == "failed" and event["polls"] == PLAN["consecutive_breaches"]
    assert event["line"].startswith("Halt at 25 %: green 5xx 10.0 % > 1.0 %"), event["line"]
    [(seen, flag_backend)] = trigger._reflex_rollback.calls
    assert flag_backend == PLAN["flag_backend"]
    assert seen["status"] == "failed" and "traffic_restored_at" not in seen  # ran once, on the decision
    # The yielded event carries the rollback's facts: it ran before the event, flags first, then traffic.
    assert event["decided_at"] <= event["flags_restored_at"] <= event["traffic_restored_at"]
    assert event["weights_after_rollback"] == {"blue": 100, "green": 0}


def test_an_emergency_stop_halts_at_once_and_rolls_back(prometheus, answers):
    stop = EmergencyStop("green corrupts invoices", "alice", 1_700_000_000.0, "manual__1")
    trigger = gate(prometheus(answers.healthy()), stops=lambda poll: stop if poll >= 1 else None, step_timeout=40)
    event = run(trigger)
    assert event["status"] == "failed" and event["polls"] == 1  # one healthy poll, then the stop
    assert event["line"].startswith("Halt at 25 %: emergency rollback by alice") and "green corrupts invoices" in event["line"]
    assert EmergencyStop.from_json(event["emergency_stop"]) == stop
    assert len(trigger._reflex_rollback.calls) == 1 and "traffic_restored_at" in event


def test_an_unreadable_emergency_stop_never_promotes(prometheus, answers):
    def unreadable(poll):
        raise CutoverStateError("cutover state (redis_default) unavailable while reading the emergency stop")
    trigger = gate(prometheus(answers.healthy()), stops=unreadable, healthy_before=3.0)
    event = run(trigger)
    assert event["status"] == "inconclusive" and "cutover state unreadable" in event["reason"]
    assert len(trigger._reflex_rollback.calls) == 1


def on(query_part, failure, otherwise):
    """Answer ``failure`` to the queries containing ``query_part``, the healthy answer to the rest."""
    def answer(promql):
        return failure(promql) if query_part in promql else otherwise(promql)
    return answer


def raise_(error):
    def answer(promql):
        raise error
    return answer


GREEN_P95 = 'histogram_quantile(0.95, (sum by (le) (rate(http_request_duration_seconds_bucket{job="apps",color="green"'
BLUE_REQUESTS = 'sum(increase(http_server_requests_total{job="apps",color="blue",path=~"/api/.*"}['
MEASUREMENT_ERRORS = {
    "several series": (GREEN_P95, lambda a: lambda q: a.vector("0.02", "0.03"),
                       "Prometheus bad answer measuring green p95 latency: query 'histogram_quantile(0.95"),
    "several series on blue": (BLUE_REQUESTS, lambda a: lambda q: a.vector("500", "500"),
                               "Prometheus bad answer measuring blue requests"),
    "non-number": ("color=\"green\"", lambda a: lambda q: a.vector("lots"), "Prometheus bad answer measuring green up"),
    "NaN": (GREEN_P95, lambda a: lambda q: a.vector("NaN"), "no green p95 latency data"),
    "timeout": ("", lambda a: raise_(requests.ReadTimeout("read timed out")),
                "Prometheus unavailable measuring green up: Prometheus at http://127.0.0.1:9 did not answer"),
    "refused query": (GREEN_P95, lambda a: lambda q: a.http(400, {"status": "error", "error": "parse error"}),
                      "Prometheus refused the query measuring green p95 latency: Prometheus refused query"),
    "HTTP 5xx": ("", lambda a: lambda q: a.http(503, "Service Unavailable"), "HTTP 503 Service Unavailable"),
    "connection refused": ("", lambda a: raise_(requests.ConnectionError("[Errno 111] Connection refused")),
                           "Prometheus unavailable measuring green up"),
    "malformed JSON": ("", lambda a: lambda q: a.http(200, "{\"status\": \"succ"),
                       "Prometheus bad answer measuring green up: Prometheus answered"),
}


@pytest.mark.parametrize("kind", MEASUREMENT_ERRORS, ids=list(MEASUREMENT_ERRORS))
def test_every_measurement_error_is_inconclusive_never_promotes_and_rolls_back_on_timeout(prometheus, answers, kind):
    query_part, failure, reason = MEASUREMENT_ERRORS[kind]
    # Green has been healthy long enough to promote on its first PASS: only the error holds it back.
    trigger = gate(prometheus(on(query_part, failure(answers), answers.healthy())), healthy_before=3.0)
    event = run(trigger)
    assert event["status"] == "inconclusive" and event["verdict"] == "INCONCLUSIVE", event["line"]
    assert reason in event["reason"], event["reason"]
    assert event["line"].startswith("Give up at 25 %: step timeout") and reason in event["line"]
    assert event["polls"] >= 2, event  # held poll after poll, never promoted
    if kind != "NaN":  # NaN is "no data": the judge still sees the other measures
        assert event["measurements"] == {}
    [(seen, _)] = trigger._reflex_rollback.calls
    assert seen["status"] == "inconclusive" and "traffic_restored_at" in event


def test_an_unexpected_error_still_ends_the_gate_failed_after_the_reflex_rollback(answers):
    class BrokenSource:
        def query_optional(self, promql):
            raise KeyError("labels")  # not a Prometheus error: a bug, not a measurement

    trigger = gate(BrokenSource(), step_timeout=40)
    event = run(trigger)
    assert event["status"] == "failed" and event["verdict"] == "INCONCLUSIVE"
    assert event["line"] == "Halt at 25 %: the gate itself failed, so green is not judged: KeyError: 'labels'"
    assert len(trigger._reflex_rollback.calls) == 1 and "traffic_restored_at" in event


def test_an_unreadable_plan_still_rolls_back_with_the_plan_s_flag_store(prometheus, answers):
    plan = {**PLAN, "flag_backend": "unleash", "poll_interval_seconds": 0.01}  # below the schema's 0.2
    trigger = gate(prometheus(answers.healthy()), plan=plan)
    event = run(trigger)
    assert event["status"] == "failed" and "poll_interval_seconds" in event["reason"]
    assert [backend for _, backend in trigger._reflex_rollback.calls] == ["unleash"]


def test_a_reflex_rollback_that_raises_still_yields_the_halt(prometheus, answers):
    trigger = gate(prometheus(answers.healthy(green_errors="100")), reflex=Reflex(raises=RuntimeError("router gone")), step_timeout=40)
    event = run(trigger)
    assert event["status"] == "failed" and event["reflex_error"] == "RuntimeError: router gone"


def test_the_seams_are_not_serialized():
    trigger = gate(object())
    _, kwargs = trigger.serialize()
    assert not {"_metrics_source", "_read_emergency_stop", "_reflex_rollback"} & set(kwargs)
    assert SLOGateTrigger(**kwargs).serialize() == trigger.serialize()
