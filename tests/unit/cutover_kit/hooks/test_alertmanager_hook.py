"""AlertmanagerHook without Alertmanager: the Connection's extra is validated naming the field,
a missing Connection means "not configured", and an unreachable one is AlertmanagerUnavailable."""

from __future__ import annotations

import json
import socket

import pytest

from cutover_kit.hooks.alertmanager import (
    AlertmanagerConfigError, AlertmanagerHook, AlertmanagerUnavailable, alertmanager_configured, routing_settings,
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_routing_settings_are_read_and_checked() -> None:
    settings = routing_settings({"routing_test_receiver": "green-page", "readback_url": "http://127.0.0.1:1/received",
                                 "readback_path_prefix": "/alertmanager/"}, "am")
    assert (settings.receiver, settings.readback_url, settings.readback_path_prefix) == (
        "green-page", "http://127.0.0.1:1/received", "/alertmanager/")
    assert routing_settings({}, "am").receiver is None
    with pytest.raises(AlertmanagerConfigError, match="extra.routing_test_receiver"):
        routing_settings({"routing_test_receiver": ""}, "am")
    with pytest.raises(AlertmanagerConfigError, match="extra.readback_url"):
        routing_settings({"readback_url": "ftp://x"}, "am")


def test_a_missing_connection_is_not_configured(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_ALERTMANAGER_UNIT", raising=False)
    assert not alertmanager_configured("alertmanager_unit")
    monkeypatch.setenv("AIRFLOW_CONN_ALERTMANAGER_UNIT", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": 9}))
    assert alertmanager_configured("alertmanager_unit")


def test_an_unreachable_alertmanager_is_unavailable_naming_the_url(monkeypatch) -> None:
    port = closed_port()
    monkeypatch.setenv("AIRFLOW_CONN_ALERTMANAGER_UNIT", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": port, "extra": {"timeout_seconds": 1}}))
    hook = AlertmanagerHook("alertmanager_unit")
    with pytest.raises(AlertmanagerUnavailable, match=f"GET http://127.0.0.1:{port}/api/v2/alerts failed"):
        hook.get_alerts()
    assert not hook.is_ready()
    with pytest.raises(AlertmanagerConfigError, match="no extra.readback_url"):
        hook.read_back(0.0)


def test_a_bad_timeout_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ALERTMANAGER_UNIT", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": 9, "extra": {"timeout_seconds": 0}}))
    with pytest.raises(AlertmanagerConfigError, match="timeout_seconds"):
        AlertmanagerHook("alertmanager_unit").get_alerts()
