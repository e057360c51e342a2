"""Stage 4's check_error_reporting with the real receiver in-process and the apps' test-exception
endpoint stood in for (the integration test drives the real apps)."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit.hooks.service import Probe, ServiceHook
from cutover_kit.stages import monitoring
from sandbox.sentry_receiver import SentryReceiver


def envelope(color: str, release: str, check_id: str) -> bytes:
    event = {"event_id": f"{color}1", "release": release, "tags": {"color": color, "check_id": check_id},
             "exception": {"values": [{"type": "ErrorReportingCheck"}]}}
    return b"{}\n" + b'{"type":"event"}\n' + json.dumps(event).encode() + b"\n"


@pytest.fixture
def receiver(monkeypatch):
    with SentryReceiver() as sentry:
        monkeypatch.setenv("AIRFLOW_CONN_ERROR_TRACKING_DEFAULT", json.dumps({
            "conn_type": "http", "host": "127.0.0.1", "port": sentry.port, "extra": {"organization": "sandbox"}}))
        yield sentry


def apps(monkeypatch, receiver, *, sends: dict[str, str | None], answers: dict[str, int] | None = None):
    """Each color answers its status and, when it has a release to send with, reports to the receiver."""
    def probe(self, method, path, json_body=None, headers=None):
        color = "blue" if self.service_conn_id == "app_blue" else "green"
        status = (answers or {}).get(color, 202)
        if status != 202:
            return Probe(method, path, status, 1.0, {"reported": False, "error": "no SENTRY_DSN configured"})
        release = sends.get(color)
        if release is not None:
            receiver.ingest("1", "envelope", envelope(color, release, json_body["check_id"]), None)
        return Probe(method, path, 202, 1.0, {"reported": True, "type": "ErrorReportingCheck", "release": f"{color}@abc"})
    monkeypatch.setattr(ServiceHook, "probe", probe)


def test_passes_when_both_colors_reach_the_tracker_under_their_release(monkeypatch, receiver):
    apps(monkeypatch, receiver, sends={"blue": "blue@abc", "green": "green@abc"})
    result = monitoring.check_error_reporting()
    assert result["verdict"] == "PASS" and result["releases"] == {"blue": "blue@abc", "green": "green@abc"}
    assert result["reason"].startswith(f"error reporting reaches the tracker (check {result['check_id']})")


def test_a_color_whose_event_never_arrives_fails_naming_it(monkeypatch, receiver):
    apps(monkeypatch, receiver, sends={"blue": "blue@abc", "green": None})
    with pytest.raises(AirflowException, match="green: no event received"):
        monitoring.check_error_reporting(timeout_seconds=0.6)


def test_a_wrong_release_fails_and_a_missing_dsn_is_final(monkeypatch, receiver):
    apps(monkeypatch, receiver, sends={"blue": "blue@abc", "green": "green@old"})
    with pytest.raises(AirflowException, match="green event received but with release green@old, not green@abc"):
        monitoring.check_error_reporting(timeout_seconds=0.3)
    apps(monkeypatch, receiver, sends={}, answers={"green": 412})
    with pytest.raises(AirflowFailException, match="green has no Sentry DSN configured"):
        monitoring.check_error_reporting()
