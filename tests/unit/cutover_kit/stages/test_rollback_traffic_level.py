"""The rollback group's traffic level (also the emergency DAG's): a router that refuses is retried
within the traffic deadline, and a router that never answers fails the task with the reason."""

from __future__ import annotations

import functools

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.actions.rollback import traffic_to_blue_within
from cutover_kit.routing import RouterWeights
from cutover_kit.stages import rollback


class Router:
    def __init__(self, refusals: int) -> None:
        self.refusals, self.attempts = refusals, 0

    def set_green_percent(self, percent: int) -> RouterWeights:
        self.attempts += 1
        if self.attempts <= self.refusals:
            raise ConnectionRefusedError("runtime API refused")
        return RouterWeights(blue=100, green=0)

    def describe(self) -> str:
        return "a router that refuses at first"


@pytest.fixture
def router(monkeypatch):
    router = Router(refusals=2)
    # The emergency DAG's path: no run plan, the router of the named plan file.
    monkeypatch.setattr("cutover_kit.hooks.levers.router_for_plan", lambda plan: router)
    monkeypatch.setattr(rollback, "traffic_to_blue_within", functools.partial(traffic_to_blue_within, deadline_seconds=0.4))
    return router


def test_a_router_that_comes_back_within_the_deadline_is_verified(router):
    result = rollback.route_all_to_blue()
    assert router.attempts == 3 and result["verdict"] == "PASS" and result["weights"] == {"blue": 100, "green": 0}
    assert "verified by read-back on attempt 3 in " in result["reason"]


def test_a_router_that_never_answers_fails_the_task_with_the_reason_and_may_be_retried(router):
    router.refusals = 10_000
    with pytest.raises(AirflowException, match=r"traffic -> blue NOT verified: router not set back to blue after \d+ "
                                               r"attempt\(s\) .*deadline 0.4 s\); last: ConnectionRefusedError") as failed:
        rollback.route_all_to_blue()
    assert not isinstance(failed.value, AirflowFailException) and router.attempts >= 2
