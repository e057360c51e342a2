"""The `smoke` DAG's contract: schedule, one run at a time, short timeouts, retries, the failure
notifier on every task and on the DAG, and request-file validation before any request."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO_ROOT / "dags" / "smoke.py"), include_examples=False)
    assert bag.import_errors == {}
    return bag.dags["smoke"]


def test_schedule_and_run_limits(dag):
    assert dag.timetable.expression == "*/15 * * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.dagrun_timeout is not None and dag.dagrun_timeout < timedelta(minutes=15)
    assert {"smoke", "blue-green"} <= set(dag.tags)


def test_tasks_are_short_retried_and_notify_on_failure(dag):
    from cutover_kit.notifiers.webhook import WebhookNotifier

    assert set(dag.task_ids) == {"validate_request_files", "checks_blue", "checks_green", "checks_router",
                                 "parity_blue_green"}
    for task in dag.tasks:
        assert task.execution_timeout is not None and task.execution_timeout <= timedelta(seconds=60), task.task_id
        assert task.retries >= 2, task.task_id
        callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) else [task.on_failure_callback]
        assert any(isinstance(cb, WebhookNotifier) and cb.conn_id == "smoke_webhook" for cb in callbacks), task.task_id
    run_callbacks = dag.on_failure_callback if isinstance(dag.on_failure_callback, list) else [dag.on_failure_callback]
    assert any(isinstance(cb, WebhookNotifier) for cb in run_callbacks)


def test_request_files_are_validated_before_any_request(dag):
    validate = dag.get_task("validate_request_files")
    assert validate.upstream_task_ids == set()
    assert validate.downstream_task_ids == {"checks_blue", "checks_green", "checks_router", "parity_blue_green"}


def test_each_check_task_targets_its_connection(dag):
    targets = {task_id: dag.get_task(task_id).op_args[0] for task_id in ("checks_blue", "checks_green", "checks_router")}
    assert targets == {"checks_blue": "app_blue", "checks_green": "app_green", "checks_router": "app_router"}


def test_params_default_to_the_shipped_files(dag):
    assert dag.params["checks_file"] == "include/smoke/checks.yaml"
    assert dag.params["parity_file"] == "include/smoke/parity.yaml"
    assert (REPO_ROOT / dag.params["parity_file"]).is_file()
