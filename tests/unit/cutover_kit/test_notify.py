"""Failure notices: the Slack-compatible payload, the webhook Connection, and the notifier's
behaviour when the webhook is missing or broken (a clear log line, never an exception).

The notifier tests post to a real local HTTP server (sandbox.webhook_receiver), not a mock."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from cutover_kit.notify import (
    SECTION_LIMIT,
    FailureNotice,
    WebhookConfigError,
    notice_from_context,
    slack_payload,
    webhook_target,
)
from sandbox.webhook_receiver import WebhookReceiver

DIFF = 'Parity FAILED: 1 of 7 requests differ between app_blue and app_green\nGET /api/orders/42: $.status: blue "paid" != green "PAID"'


def task_context(error: BaseException | None = None, **ti_fields):
    ti = SimpleNamespace(dag_id="smoke", task_id="parity_blue_green", run_id="scheduled__2026-11-26T10:00:00+00:00",
                         try_number=1, log_url="http://airflow.example/dags/smoke/runs/x/tasks/parity_blue_green", **ti_fields)
    context = {"ti": ti, "dag": SimpleNamespace(dag_id="smoke")}
    if error is not None:
        context["exception"] = error
    return context


# ------------------------------------------------------------------------------------ the notice


def test_task_failure_notice_carries_the_error_lines():
    notice = notice_from_context(task_context(RuntimeError(DIFF)), "Smoke FAILED")
    assert notice == FailureNotice(title="Smoke FAILED", dag_id="smoke", task_id="parity_blue_green",
                                   run_id="scheduled__2026-11-26T10:00:00+00:00", try_number=1, error=DIFF,
                                   log_url="http://airflow.example/dags/smoke/runs/x/tasks/parity_blue_green")
    assert notice.subject == "Smoke FAILED: smoke.parity_blue_green (run scheduled__2026-11-26T10:00:00+00:00, try 1)"


def test_recorded_error_stands_in_when_the_context_has_no_exception():
    assert notice_from_context(task_context(), "t", recorded_error=DIFF).error == DIFF
    assert notice_from_context(task_context(), "t").error == "task failed (no error recorded)"
    # A real exception wins over the recorded text.
    assert notice_from_context(task_context(ValueError("boom")), "t", recorded_error=DIFF).error == "boom"
    assert notice_from_context(task_context(TimeoutError()), "t").error == "TimeoutError"


def test_run_level_callbacks_notify_only_what_no_task_reported():
    covered = {"dag": SimpleNamespace(dag_id="smoke"), "run_id": "r1", "reason": "task_failure"}
    assert notice_from_context(covered, "Smoke FAILED") is None
    timed_out = notice_from_context({**covered, "reason": "timed_out"}, "Smoke FAILED")
    assert timed_out == FailureNotice(title="Smoke FAILED", dag_id="smoke", task_id=None, run_id="r1",
                                      error="DAG run failed: timed_out")
    assert timed_out.subject == "Smoke FAILED: smoke (run r1)"


# ------------------------------------------------------------------------------------ the payload


def test_payload_is_slack_compatible_text_plus_blocks():
    payload = slack_payload(notice_from_context(task_context(RuntimeError(DIFF)), "Smoke FAILED"))
    assert set(payload) == {"text", "blocks"}
    assert payload["text"] == ("Smoke FAILED: smoke.parity_blue_green (run scheduled__2026-11-26T10:00:00+00:00, try 1)\n" + DIFF)
    heading, detail, context = payload["blocks"]
    assert heading == {"type": "section", "text": {"type": "mrkdwn", "text": (
        "*Smoke FAILED*: `smoke.parity_blue_green` run `scheduled__2026-11-26T10:00:00+00:00`, try 1")}}
    assert detail["text"]["text"] == f"```{DIFF}```"
    assert context == {"type": "context", "elements": [{"type": "mrkdwn", "text": (
        "<http://airflow.example/dags/smoke/runs/x/tasks/parity_blue_green|Task log>")}]}
    json.dumps(payload)  # plain JSON


def test_payload_without_log_url_has_no_context_block():
    notice = FailureNotice(title="Smoke FAILED", dag_id="smoke", task_id=None, run_id="r1", error="DAG run failed: timed_out")
    assert [block["type"] for block in slack_payload(notice)["blocks"]] == ["section", "section"]


def test_long_errors_are_cut_to_slack_section_limits_with_a_note():
    notice = FailureNotice(title="Smoke FAILED", dag_id="smoke", task_id="t", run_id="r", error="x" * 10_000)
    payload = slack_payload(notice)
    assert len(payload["text"]) <= SECTION_LIMIT and "more characters in the task log" in payload["text"]
    assert all(len(block["text"]["text"]) <= SECTION_LIMIT for block in payload["blocks"])


# ------------------------------------------------------------------------------------ the Connection


def conn(host="hooks.example.com", port=None, schema="https", password=None, extra=None):
    return SimpleNamespace(host=host, port=port, schema=schema, password=password, extra_dejson=extra or {})


def test_target_from_connection_fields():
    target = webhook_target(conn(extra={"endpoint": "/services/T0/B0/secret"}), "smoke_webhook")
    assert target.url == "https://hooks.example.com/services/T0/B0/secret"
    assert target.headers == {"Content-Type": "application/json"}
    assert target.safe_url == "https://hooks.example.com/…"  # the path is often the secret: never logged
    local = webhook_target(conn(host="127.0.0.1", port=8099, schema=None, password="tok",
                                extra={"headers": {"X-Team": "platform"}, "timeout_seconds": 2}), "smoke_webhook")
    assert local.url == "http://127.0.0.1:8099"
    assert local.headers == {"Content-Type": "application/json", "X-Team": "platform", "Authorization": "Bearer tok"}
    assert local.timeout_seconds == 2.0


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        (conn(host=None), "has no host"),
        (conn(extra={"endpoint": "services/x"}), "extra.endpoint must be a path starting with /"),
        (conn(extra={"headers": ["X-A: b"]}), "extra.headers must map header names to strings"),
        (conn(extra={"timeout_seconds": 0}), "extra.timeout_seconds must be in (0, 60]"),
        (conn(extra={"base_url": "ftp://files.example.com"}), "is not http(s)"),
    ],
)
def test_unusable_connections_are_named(connection, message):
    with pytest.raises(WebhookConfigError, match="smoke_webhook") as error:
        webhook_target(connection, "smoke_webhook")
    assert message in str(error.value)


# ------------------------------------------------------------------------------------ the notifier


@pytest.fixture
def notifier():
    from cutover_kit.notifiers.webhook import WebhookNotifier

    return WebhookNotifier(conn_id="smoke_webhook_unit")


def test_notifier_posts_the_payload_to_a_real_receiver(notifier, monkeypatch, caplog):
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_SMOKE_WEBHOOK_UNIT", json.dumps(receiver.connection("/hooks/smoke") | {"password": "tok"}))
        caplog.set_level(logging.INFO)
        notifier(task_context(RuntimeError(DIFF)))
        received = receiver.wait_for(1)
    assert len(received) == 1
    assert received[0]["path"] == "/hooks/smoke"
    assert received[0]["headers"]["Authorization"] == "Bearer tok"
    assert received[0]["body"]["text"].endswith('$.status: blue "paid" != green "PAID"')
    assert any(r.getMessage().startswith("Failure notified: POST http://127.0.0.1:") for r in caplog.records)


def test_missing_connection_is_one_clear_line_and_no_exception(notifier, monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_SMOKE_WEBHOOK_UNIT", raising=False)
    caplog.set_level(logging.INFO)
    notifier(task_context(RuntimeError(DIFF)))  # must not raise
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("Failure NOT notified: webhook Connection 'smoke_webhook_unit' is unavailable")
    assert "The failure itself stands: Smoke FAILED: smoke.parity_blue_green" in errors[0]


def test_invalid_connection_and_failing_webhook_are_logged_not_raised(notifier, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("AIRFLOW_CONN_SMOKE_WEBHOOK_UNIT", json.dumps({"conn_type": "http", "host": "127.0.0.1",
                                                                      "extra": {"endpoint": "no-slash"}}))
    notifier(task_context(RuntimeError(DIFF)))
    with WebhookReceiver(status=500) as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_SMOKE_WEBHOOK_UNIT", json.dumps(receiver.connection()))
        notifier(task_context(RuntimeError(DIFF)))
        assert len(receiver.wait_for(1)) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert "extra.endpoint must be a path starting with /" in errors[0]
    assert "answered HTTP 500" in errors[1] and "/…" in errors[1] and "/hooks/smoke" not in errors[1]


def test_unreachable_webhook_is_logged_not_raised(notifier, monkeypatch, caplog):
    with WebhookReceiver() as receiver:
        port = receiver.port
    monkeypatch.setenv("AIRFLOW_CONN_SMOKE_WEBHOOK_UNIT", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": port}))
    caplog.set_level(logging.INFO)
    notifier(task_context(RuntimeError(DIFF)))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"Failure NOT notified: POST http://127.0.0.1:{port}")


def test_run_level_task_failure_is_not_posted_twice(notifier, monkeypatch):
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_SMOKE_WEBHOOK_UNIT", json.dumps(receiver.connection()))
        notifier({"dag": SimpleNamespace(dag_id="smoke"), "run_id": "r1", "reason": "task_failure"})
        notifier({"dag": SimpleNamespace(dag_id="smoke"), "run_id": "r1", "reason": "timed_out"})
        received = receiver.wait_for(1)
    assert [entry["body"]["text"] for entry in received] == ["Smoke FAILED: smoke (run r1)\nDAG run failed: timed_out"]
