"""AlertmanagerHook: Alertmanager's API v2 over Connection ``alertmanager_default`` (conn_type
http: host, port, optional schema https, login/password for basic auth).

Extra (all optional):
- ``routing_test_receiver``: the receiver a critical alert for green must reach (stage 4's
  routing check; the sandbox: ``green-page``). Without it the routing check fails, saying so.
- ``readback_url`` (+ ``readback_path_prefix``): a GET endpoint listing the webhook posts a
  receiver got, in the sandbox webhook receiver's format (``?path_prefix=&since=`` ->
  ``{"received": [...]}``). Only the sandbox has one; without it stage 4 checks Alertmanager's own
  routing and logs how to verify the delivery by hand.
- ``timeout_seconds`` (default 2).

Every failure to talk to Alertmanager is one AlertmanagerUnavailable naming the URL: the gate
makes such a poll INCONCLUSIVE, stage 4 fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.hooks import http_base_url
from cutover_kit.hooks.service import short_error

DEFAULT_TIMEOUT_SECONDS = 2.0


class AlertmanagerUnavailable(RuntimeError):
    """Alertmanager (or the readback endpoint) did not answer, or not with JSON / 2xx."""


class AlertmanagerConfigError(ValueError):
    """The Connection's extra is wrong; the message names the field."""


@dataclass(frozen=True)
class RoutingSettings:
    receiver: str | None
    readback_url: str | None
    readback_path_prefix: str


def alertmanager_configured(conn_id: str) -> bool:
    """Whether the Connection resolves (the gate consults Alertmanager only then)."""
    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException and secrets-backend errors alike
        return False
    return True


def routing_settings(extra: dict[str, Any], conn_id: str) -> RoutingSettings:
    receiver = extra.get("routing_test_receiver")
    readback = extra.get("readback_url")
    prefix = extra.get("readback_path_prefix", "")
    if receiver is not None and (not isinstance(receiver, str) or not receiver.strip()):
        raise AlertmanagerConfigError(f"Connection {conn_id!r}: extra.routing_test_receiver must be a receiver name, got {receiver!r}")
    if readback is not None and (not isinstance(readback, str) or not readback.startswith(("http://", "https://"))):
        raise AlertmanagerConfigError(f"Connection {conn_id!r}: extra.readback_url must be an http(s) URL, got {readback!r}")
    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
        raise AlertmanagerConfigError(f"Connection {conn_id!r}: extra.readback_path_prefix must start with /, got {prefix!r}")
    return RoutingSettings(receiver, readback, prefix)


class AlertmanagerHook(BaseHook):
    conn_name_attr = "alertmanager_conn_id"
    default_conn_name = connections.ALERTMANAGER
    conn_type = "http"
    hook_name = "Alertmanager"

    def __init__(self, alertmanager_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.alertmanager_conn_id = alertmanager_conn_id

    @cached_property
    def _connection(self) -> Any:
        return self.get_connection(self.alertmanager_conn_id)

    @cached_property
    def base_url(self) -> str:
        return http_base_url(self._connection, self.alertmanager_conn_id)

    @cached_property
    def timeout_seconds(self) -> float:
        value = (self._connection.extra_dejson or {}).get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 30:
            raise AlertmanagerConfigError(f"Connection {self.alertmanager_conn_id!r}: extra.timeout_seconds must be in (0, 30], got {value!r}")
        return float(value)

    def get_conn(self) -> requests.Session:
        session = requests.Session()
        if self._connection.login:
            session.auth = (self._connection.login, self._connection.password or "")
        return session

    @cached_property
    def session(self) -> requests.Session:
        return self.get_conn()

    def routing_settings(self) -> RoutingSettings:
        return routing_settings(self._connection.extra_dejson or {}, self.alertmanager_conn_id)

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(method, url, timeout=self.timeout_seconds, **kwargs)
        except requests.Timeout:
            raise AlertmanagerUnavailable(f"{method} {url} did not answer within {self.timeout_seconds:g} s") from None
        except requests.RequestException as error:
            raise AlertmanagerUnavailable(f"{method} {url} failed: {short_error(error, self.timeout_seconds)}") from None
        if not 200 <= response.status_code < 300:
            raise AlertmanagerUnavailable(f"{method} {url} answered HTTP {response.status_code}: {' '.join(response.text.split())[:160]}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerUnavailable(f"{method} {url} answered HTTP {response.status_code} without JSON") from None

    def get_alerts(self, filters: list[str] | None = None) -> Any:
        """GET /api/v2/alerts (active, silenced and inhibited; resolved ones are not listed).
        ``filters``: label matchers, e.g. ['cutover_routing_test="abc"']."""
        return self._call("GET", f"{self.base_url}/api/v2/alerts", params=[("filter", f) for f in filters or ()])

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts (what Prometheus does; an alert with a past endsAt resolves it)."""
        self._call("POST", f"{self.base_url}/api/v2/alerts", json=alerts)

    def is_ready(self) -> bool:
        try:
            return self.session.get(f"{self.base_url}/-/ready", timeout=self.timeout_seconds).status_code == 200
        except requests.RequestException:
            return False

    def read_back(self, since: float) -> list[dict[str, Any]]:
        """The webhook posts received since ``since`` (epoch seconds), from the readback endpoint."""
        settings = self.routing_settings()
        if settings.readback_url is None:
            raise AlertmanagerConfigError(f"Connection {self.alertmanager_conn_id!r} has no extra.readback_url")
        answer = self._call("GET", settings.readback_url,
                            params={"path_prefix": settings.readback_path_prefix, "since": f"{since:.3f}"})
        if not isinstance(answer, dict) or not isinstance(answer.get("received"), list):
            raise AlertmanagerUnavailable(f"GET {settings.readback_url} answered without a 'received' list")
        return answer["received"]
