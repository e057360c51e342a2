"""The `smoke` DAG run for real: dag.test() in a fresh process (private SQLite AIRFLOW_HOME) against
the real sandbox, with a real local webhook receiver standing in for Slack.

- passing: every task succeeds and nothing is posted;
- green's body_drift fault on: the parity task fails (once, no retry), its log names the field with
  both values, and the receiver got the Slack-compatible payload with the same lines;
- a malformed parity file: refused before any request, naming the file and the entry; without a
  webhook Connection the log says so in one line and the failure stands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandbox.dag_runner import MARKER
from sandbox.launcher import Sandbox
from sandbox.webhook_receiver import WebhookReceiver

# One dag.test() run takes ~20 s on a quiet machine and over 2 minutes at load 12 on 2 cores.
pytestmark = pytest.mark.timeout(480)
REPO = Path(__file__).resolve().parents[2]
CHECK_TASKS = ("checks_blue", "checks_green", "checks_router")


def run_smoke(sandbox: Sandbox, tmp_path: Path, receiver: WebhookReceiver | None,
              conf: dict | None = None) -> tuple[dict, str]:
    home = tmp_path / "airflow"
    home.mkdir()
    env = dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
               AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"), PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'plugins'}")
    for conn_id, connection in sandbox.connections().items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
    # The sandbox's own smoke_webhook is replaced by this test's receiver, or removed (receiver=None).
    env.pop("AIRFLOW_CONN_SMOKE_WEBHOOK", None)
    if receiver is not None:
        env["AIRFLOW_CONN_SMOKE_WEBHOOK"] = json.dumps(receiver.connection("/hooks/smoke") | {"password": "smoke-token"})
    argv = [sys.executable, "-m", "sandbox.dag_runner", "smoke", "--reset-db", "--conf", json.dumps(conf or {})]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    output = done.stdout + done.stderr
    outcomes = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    assert outcomes, output[-4000:]
    return json.loads(outcomes[-1].removeprefix(MARKER)), output


def test_smoke_run_passes_on_a_healthy_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        outcome, output = run_smoke(sandbox, tmp_path, receiver)
        posted = list(receiver.received)
    assert outcome["state"] == "success", output[-4000:]
    assert set(outcome["tasks"].values()) == {"success"} and len(outcome["tasks"]) == 5
    for target in ("app_blue", "app_green", "app_router"):
        assert f"Smoke checks ok on {target}: 5 of 5" in output
    assert re.search(r"Parity ok: \d+ requests answered alike by app_blue and app_green", output)
    assert "same GET /api/orders/42 (order): HTTP 200 from both" in output
    assert posted == []


@pytest.fixture
def green_drifts(sandbox: Sandbox):
    green = f"{sandbox.config.app_url('green')}/__fault"
    assert requests.post(green, json={"body_drift": True}, timeout=2).json()["body_drift"] is True
    try:
        yield
    finally:
        assert requests.delete(green, timeout=2).json() == {
            "error_fraction": 0.0, "added_latency_ms": 0.0, "body_drift": False, "max_concurrent": 0, "weakness": "none",
            "corrupt_writes_fraction": 0, "drop_writes_fraction": 0}


def test_green_body_drift_fails_parity_names_the_field_and_notifies(sandbox: Sandbox, tmp_path: Path,
                                                                     green_drifts: None) -> None:
    blue_order = requests.get(f"{sandbox.config.app_url('blue')}/api/orders/42", timeout=2).json()
    expected = f'GET /api/orders/42: $.status: blue "{blue_order["status"]}" != green "{blue_order["status"].upper()}"'
    with WebhookReceiver() as receiver:
        outcome, output = run_smoke(sandbox, tmp_path, receiver)
        posted = receiver.wait_for(1, timeout=5)
    assert outcome["state"] == "failed", output[-4000:]
    assert outcome["tasks"] == {"validate_request_files": "success", "parity_blue_green": "failed",
                                **{task: "success" for task in CHECK_TASKS}}, output[-4000:]
    assert outcome["tries"]["parity_blue_green"] == 1  # a real difference is not retried
    # The task log: one line per differing field, with its JSON path and both values.
    assert expected in output
    assert re.search(r'GET /api/users/42/orders: \$\.orders\[0\]\.status: blue "[a-z]+" != green "[A-Z]+"', output)
    assert "$.amount" not in output.split("Parity of", 1)[1]  # declared volatile: never reported
    # The webhook: exactly one Slack-compatible payload (the run-level callback stays quiet).
    assert len(posted) == 1, posted
    hook = posted[0]
    assert hook["path"] == "/hooks/smoke" and hook["headers"]["Authorization"] == "Bearer smoke-token"
    assert set(hook["body"]) == {"text", "blocks"}
    text = hook["body"]["text"]
    assert text.startswith("Smoke FAILED: smoke.parity_blue_green (run manual__")
    assert "Parity FAILED: " in text and expected in text
    assert expected in hook["body"]["blocks"][1]["text"]["text"]
    assert "Failure notified: POST http://127.0.0.1:" in output
    assert "No run-level notification: reason 'task_failure'" in output


def test_malformed_parity_file_is_refused_before_any_request(sandbox: Sandbox, tmp_path: Path) -> None:
    bad = tmp_path / "parity.yaml"
    bad.write_text("ignore:\n  - {path: $.amount}\nrequests:\n  - {name: user, method: GET, path: /api/users/42}\n")
    outcome, output = run_smoke(sandbox, tmp_path, receiver=None, conf={"parity_file": str(bad)})
    assert outcome["tasks"] == {"validate_request_files": "failed", "parity_blue_green": "upstream_failed",
                                **{task: "upstream_failed" for task in CHECK_TASKS}}, output[-4000:]
    assert outcome["tries"]["validate_request_files"] == 1  # a bad file is not retried
    assert (f"Smoke refused before any request: parity file {bad}: ignore[0] ('$.amount') needs a reason" in output)
    assert "Smoke checks on" not in output and "Parity of" not in output
    # No webhook Connection: one clear line, and the task's failure stands.
    assert "Failure NOT notified: webhook Connection 'smoke_webhook' is unavailable" in output
    assert outcome["state"] == "failed"
