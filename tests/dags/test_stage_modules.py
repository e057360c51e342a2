"""One stage, one module: every task of a `cutover` task group runs a callable of
``cutover_kit.stages.<group without its stage_NN_ prefix>`` (the top-level group for nested ones
like ``stage_10_traffic_migration.step_25``); the tasks outside any group run ``stages.verdict``.
Operators (the SLO gate operators) have no python callable and are exempt. Stages that later issues
add follow the same rule (``stage_04_monitoring`` -> ``stages/monitoring.py``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
UNGROUPED_MODULE = "cutover_kit.stages.verdict"


@pytest.fixture(scope="module")
def cutover():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO_ROOT / "dags" / "cutover.py"), include_examples=False)
    assert bag.import_errors == {}
    return bag.dags["cutover"]


def expected_module(task_id: str) -> str:
    if "." not in task_id:
        return UNGROUPED_MODULE
    group = task_id.split(".", 1)[0]
    return "cutover_kit.stages." + re.sub(r"^stage_\d+_", "", group)


def test_every_task_runs_a_callable_of_its_stage_module(cutover):
    wrong, checked = [], 0
    for task in cutover.tasks:
        function = getattr(task, "python_callable", None)
        if function is None:  # an operator (SLOGateOperator): its code is its class
            continue
        checked += 1
        if function.__module__ != expected_module(task.task_id):
            wrong.append(f"{task.task_id}: {function.__module__}.{function.__qualname__}, "
                         f"expected a callable of {expected_module(task.task_id)}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 40  # every built stage is covered, not a handful


def test_every_stage_module_exists_as_a_file(cutover):
    modules = {expected_module(task.task_id) for task in cutover.tasks}
    missing = [m for m in modules if not (REPO_ROOT / "plugins" / (m.replace(".", "/") + ".py")).is_file()]
    assert not missing
