"""A Deadline Alert that passes, under a real scheduler and triggerer: a probe DAG whose one task
overstays a 5 s deadline (counted from the run being queued), with the cutover's own callback
(cutover_kit.notifiers.deadlines.notify_deadline_missed). The scheduler sees the deadline pass, the
triggerer awaits the callback, and the `cutover_notifications` webhook (a real local receiver) gets
one DEADLINE MISSED line naming the run.

The cutover DAG's own deadlines (hours) are checked where they are defined
(tests/dags/test_cutover_notifications_shape.py); this proves the mechanism they rely on.
`airflow standalone` on a private home and a dags folder holding only the probe; API on
17080 + SANDBOX_E2E_PORT_OFFSET (default 9000 here: beside the other e2e modules).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from sandbox.airflow_stack import AirflowStack
from sandbox.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.timeout(900)

PROBE_DAG = '''
"""Overstays its 5 s deadline: the cutover's deadline callback must post."""
import time
from datetime import datetime, timedelta

from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference, task

from cutover_kit.notifiers.deadlines import notify_deadline_missed

with DAG(
    dag_id="deadline_probe",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=5),
        callback=AsyncCallback(notify_deadline_missed, kwargs={
            "watched": "run", "bound_seconds": 5, "plan_name": "probe", "conn_id": "cutover_notifications"}),
    ),
):
    @task
    def overstay():
        time.sleep(60)

    overstay()
'''


def test_a_passed_deadline_posts_through_the_cutover_webhook():
    offset = int(os.environ.get("SANDBOX_E2E_PORT_OFFSET", "9000"))
    home = Path(tempfile.mkdtemp(prefix="cutover-e2e-deadline-"))
    dags = home / "dags"
    dags.mkdir()
    (dags / "deadline_probe.py").write_text(PROBE_DAG)
    with WebhookReceiver() as receiver:
        airflow = AirflowStack(home / "airflow", api_port=17080 + offset,
                               connections={"cutover_notifications": receiver.connection("/hooks/cutover")},
                               extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)})
        try:
            airflow.start()
            airflow.unpause("deadline_probe")
            started = airflow.trigger("deadline_probe")
            assert started.status_code == 200, started.text
            run_id = started.json()["dag_run_id"]
            received = airflow.wait_until(lambda: receiver.received or None, 240, "the deadline's notice")
        finally:
            airflow.stop()
            shutil.rmtree(home, ignore_errors=True)
    [entry] = received
    facts = entry["body"]["cutover"]
    assert entry["path"] == "/hooks/cutover"
    assert facts["kind"] == "deadline_missed" and facts["run_id"] == run_id and facts["dag_id"] == "deadline_probe"
    assert facts["text"].startswith("DEADLINE MISSED: the cutover run not done 5 s after the run was queued ("), facts
    assert "the bound comes from plan 'probe'; run state " in facts["text"], facts
