"""Go/no-go approvals under a real scheduler and triggerer: a cutover with the attended rehearsal
plan (approvals wait for a person) reaches step_50's approval and waits, deferred, with 25 % still
on green; a user outside assigned_users is refused (403, even with the admin role); the assigned
user approves over REST, a second answer is refused (409), and the run goes on to 50 %. At 100 %
the assigned user rejects, and the run rolls back through rollback.halt_at_100_approval.

`airflow standalone` on a private home, the sandbox on ports + SANDBOX_E2E_PORT_OFFSET (default
8000 here: beside the other e2e modules), traffic through the router all along.
"""

from __future__ import annotations

import os

import pytest

from sandbox.airflow_stack import sandbox_under_airflow

pytestmark = pytest.mark.timeout(1200)

S10, S13 = "stage_10_traffic_migration", "stage_13_full_cutover"
APPROVE_50, APPROVE_100 = f"{S10}.step_50.approve", f"{S13}.step_100.approve"
OUTSIDER = ("outsider", "outsider-password")


def hitl_path(run_id: str, task_id: str) -> str:
    return f"/dags/cutover/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"


def green_percent(box) -> float:
    from cutover_kit.routing.haproxy_runtime import HAProxyRuntimeRouter

    extra = box.connections()["haproxy_default"]["extra"]
    return HAProxyRuntimeRouter(backend=extra["backend"], socket_path=extra["socket_path"]).read_weights().green_percent


@pytest.fixture(scope="module")
def stack():
    offset = int(os.environ.get("SANDBOX_E2E_PORT_OFFSET", "8000"))
    with sandbox_under_airflow("cutover-e2e-approvals-", offset, ("cutover",), traffic_rps=30, traffic_seconds=1500,
                               seed=13, extra_users=dict([OUTSIDER])) as (airflow, box):
        yield airflow, box


def test_an_approval_waits_for_the_assigned_user_and_a_rejection_rolls_back(stack):
    airflow, box = stack
    started = airflow.trigger("cutover", {"plan": "rehearsal-attended"})
    assert started.status_code == 200, started.text
    run_id = started.json()["dag_run_id"]

    # The run reaches the approval of 50 % and waits there, deferred, with 25 % on green being watched.
    airflow.wait_until(lambda: airflow.task_states("cutover", run_id).get(APPROVE_50) == "deferred", 600,
                       "the 50 % approval to wait")
    states = airflow.task_states("cutover", run_id)
    assert states[f"{S10}.step_50.set_flags"] in (None, "scheduled", "none"), states  # nothing moved past the approval
    assert green_percent(box) == 25
    detail = airflow.api("GET", hitl_path(run_id, APPROVE_50))
    assert detail.status_code == 200, detail.text
    request = detail.json()
    assert [user["id"] for user in request["assigned_users"]] == ["admin"]
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert "counts as Reject" in request["body"]

    answer = {"chosen_options": ["Approve"], "params_input": {}}
    refused = airflow.api_as(*OUTSIDER, "PATCH", hitl_path(run_id, APPROVE_50), json=answer)
    assert refused.status_code == 403, refused.text
    approved = airflow.api("PATCH", hitl_path(run_id, APPROVE_50), json=answer)
    assert approved.status_code == 200, approved.text
    again = airflow.api("PATCH", hitl_path(run_id, APPROVE_50), json=answer)
    assert again.status_code == 409, again.text

    # The watch sees the answer on its next poll; the run moves to 50 %.
    airflow.wait_until(lambda: airflow.task_states("cutover", run_id).get(f"{S10}.step_50.set_weights") == "success",
                       300, "50 % to be set after the approval")
    record = airflow.xcom("cutover", run_id, APPROVE_50, key="approval")
    assert record["outcome"] == "approved" and record["approver"] == "admin", record
    assert record["chosen_options"] == ["Approve"] and record["waited_seconds"] > 0, record
    assert record["watch"]["polls"] >= 1, record  # the gate judged 25 % while it waited
    log = airflow.task_log("cutover", run_id, APPROVE_50)
    assert "Proceed to 50 %: approved by admin" in log, log[-2000:]

    # At 100 % the assigned user says no: the run rolls back through the approval's halt.
    airflow.wait_until(lambda: airflow.task_states("cutover", run_id).get(APPROVE_100) == "deferred", 300,
                       "the 100 % approval to wait")
    rejected = airflow.api("PATCH", hitl_path(run_id, APPROVE_100), json={"chosen_options": ["Reject"], "params_input": {}})
    assert rejected.status_code == 200, rejected.text
    run = airflow.wait_for_run("cutover", run_id, timeout=300)
    states = airflow.task_states("cutover", run_id)
    assert run["state"] == "failed"  # the verdict fails every run that did not promote
    assert states[APPROVE_100] == "success" and states["rollback.halt_at_100_approval"] == "success", states
    assert states[f"{S13}.step_100.set_weights"] in (None, "skipped"), states
    assert states["rollback.verify_blue_serving"] == "success", states
    halt = airflow.xcom("cutover", run_id, "rollback.halt_at_100_approval")
    assert halt["reason"] == "Roll back at 50 %: 100 % Reject by admin", halt
    assert halt["approval"]["outcome"] == "rejected" and halt["approval"]["approver"] == "admin", halt
    assert green_percent(box) == 0
