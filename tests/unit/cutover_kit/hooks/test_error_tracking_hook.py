"""ErrorTrackingHook against the sandbox's receiver in-process (the same query it would send to a
real Sentry's events API), with its Connection from AIRFLOW_CONN_*."""

from __future__ import annotations

import json
import time

import pytest

from cutover_kit.error_tracking import ErrorTrackingError
from cutover_kit.hooks.error_tracking import ErrorTrackingHook
from sandbox.sentry_receiver import ReceivedEvent, SentryReceiver


def event(color: str, types: tuple[str, ...], at: float, release: str, project: str, **tags: str) -> ReceivedEvent:
    return ReceivedEvent(project_id=project, event_id=f"{color}{at}", timestamp=at, received_at=at, release=release,
                         environment="sandbox", tags={"color": color, **tags}, exception_types=types)


@pytest.fixture
def tracker(monkeypatch):
    with SentryReceiver() as receiver:
        now = time.time()
        receiver._events.extend([
            event("green", ("KeyError", "InjectedFaultError"), now - 5, "green@a", "2"),
            event("green", ("InjectedFaultError",), now - 4, "green@a", "2"),
            event("green", ("TypeError",), now - 100, "green@a", "2"),
            event("blue", ("Cutover::InjectedFaultError",), now - 3, "blue@a", "1", check_id="c1"),
            event("green", ("TypeError",), now - 2, "green@a", "9"),  # another project: not green's
        ])
        monkeypatch.setenv("AIRFLOW_CONN_ERROR_TRACKING_DEFAULT", json.dumps({
            "conn_type": "http", "host": "127.0.0.1", "port": receiver.port,
            "extra": {"organization": "sandbox", "projects": {"blue": 1, "green": 2}}}))
        yield ErrorTrackingHook(), now


def test_exception_types_count_the_raised_type_of_one_color_in_the_window(tracker):
    hook, now = tracker
    assert hook.exception_types("green", now - 10, now) == {"InjectedFaultError": 2}
    assert hook.exception_types("green", now - 1000) == {"InjectedFaultError": 2, "TypeError": 1}
    assert hook.exception_types("blue", now - 10) == {"Cutover::InjectedFaultError": 1}


def test_releases_filter_by_extra_terms(tracker):
    hook, now = tracker
    assert hook.releases("blue", now - 10, terms={"tags[check_id]": "c1"}) == {"blue@a": 1}
    assert hook.releases("blue", now - 10, terms={"tags[check_id]": "other"}) == {}


def test_a_token_is_sent_as_bearer_and_a_missing_organization_is_named(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SENTRY_PROD", json.dumps({"conn_type": "http", "host": "https://sentry.example.com",
                                                                "password": "t0ken", "extra": {"organization": "acme"}}))  # pragma: allowlist secret
    assert ErrorTrackingHook("sentry_prod").session.headers["Authorization"] == "Bearer t0ken"
    monkeypatch.setenv("AIRFLOW_CONN_SENTRY_BAD", json.dumps({"conn_type": "http", "host": "127.0.0.1"}))
    with pytest.raises(ErrorTrackingError, match="'sentry_bad' has no extra.organization"):
        ErrorTrackingHook("sentry_bad").exception_types("green", 0.0)


def test_a_tracker_that_does_not_answer_is_an_error_naming_the_url(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SENTRY_DOWN", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": 9,
                                                               "extra": {"organization": "sandbox"}}))
    with pytest.raises(ErrorTrackingError, match=r"127.0.0.1:9/api/0/organizations/sandbox/events/ did not answer"):
        ErrorTrackingHook("sentry_down", timeout_seconds=0.5).exception_types("green", 0.0)
