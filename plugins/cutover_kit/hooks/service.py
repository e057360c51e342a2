"""ServiceHook: plain HTTP probes of one service endpoint (a color directly, or the router).

Connections ``app_blue``, ``app_green`` and ``app_router`` (conn_type http: host, port, optional
schema "https"). Probes never raise on HTTP errors: a probe is a measurement, judged elsewhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.hooks import http_base_url


@dataclass(frozen=True)
class Probe:
    method: str
    url: str
    status: int | None
    elapsed_ms: float
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def short_error(error: requests.RequestException, timeout_seconds: float) -> str:
    """One readable phrase instead of urllib3's nested exception text."""
    if isinstance(error, requests.Timeout):
        return f"timed out after {timeout_seconds:g} s"
    text = str(error)
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed without a response"
    return f"{type(error).__name__}: {text[:120]}"


class ServiceHook(BaseHook):
    conn_name_attr = "service_conn_id"
    default_conn_name = connections.APP_ROUTER
    conn_type = "http"
    hook_name = "Service endpoint"

    def __init__(self, service_conn_id: str = default_conn_name, timeout_seconds: float = 3.0) -> None:
        super().__init__()
        self.service_conn_id = service_conn_id
        self.timeout_seconds = timeout_seconds

    @cached_property
    def base_url(self) -> str:
        return http_base_url(self.get_connection(self.service_conn_id), self.service_conn_id)

    def get_conn(self) -> requests.Session:
        return requests.Session()

    @cached_property
    def session(self) -> requests.Session:
        return self.get_conn()

    def probe(self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None) -> Probe:
        url = f"{self.base_url}{path}"
        started = time.perf_counter()
        try:
            response = self.session.request(method, url, json=json_body, headers=headers, timeout=self.timeout_seconds)
        except requests.RequestException as error:
            return Probe(method, url, None, (time.perf_counter() - started) * 1000, error=short_error(error, self.timeout_seconds))
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:200]
        # Header names lower-cased: HAProxy sends them lower-case, the apps capitalised.
        headers = {name.lower(): value for name, value in response.headers.items()}
        return Probe(method, url, response.status_code, elapsed_ms, body, headers)

    def exchange(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], str]:
        """(status, every header as sent, full text) of one request, for the passive security
        checks, which need repeated headers (Set-Cookie) and the whole body. Raises on no answer."""
        response = self.session.request(method, f"{self.base_url}{path}", headers=headers, timeout=self.timeout_seconds,
                                        allow_redirects=False)
        return response.status_code, list(response.raw.headers.items()), response.text
