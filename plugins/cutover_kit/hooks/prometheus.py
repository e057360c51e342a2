"""PrometheusHook: instant PromQL queries as floats, with "no data" distinct from failure.

Modelled on Flagger's metrics providers: a query returns one float or raises
:class:`PrometheusNoData` (the series does not exist or is NaN), and :class:`PrometheusUnavailable`
when Prometheus itself cannot answer. Callers decide what each means; the SLO gate treats both as
INCONCLUSIVE, never as healthy.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.hooks import http_base_url


class PrometheusNoData(LookupError):
    """The query ran but returned no sample (or NaN, e.g. a quantile of zero requests)."""


class PrometheusUnavailable(RuntimeError):
    """Prometheus did not answer, or answered with an error."""


class PrometheusHook(BaseHook):
    conn_name_attr = "prometheus_conn_id"
    default_conn_name = connections.PROMETHEUS
    conn_type = "http"
    hook_name = "Prometheus"

    def __init__(self, prometheus_conn_id: str = default_conn_name, timeout_seconds: float = 3.0) -> None:
        super().__init__()
        self.prometheus_conn_id = prometheus_conn_id
        self.timeout_seconds = timeout_seconds

    @cached_property
    def base_url(self) -> str:
        return http_base_url(self.get_connection(self.prometheus_conn_id), self.prometheus_conn_id)

    def get_conn(self) -> requests.Session:
        session = requests.Session()
        conn = self.get_connection(self.prometheus_conn_id)
        if conn.login:
            session.auth = (conn.login, conn.password or "")
        return session

    @cached_property
    def session(self) -> requests.Session:
        return self.get_conn()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query; return the raw result vector."""
        try:
            response = self.session.get(
                f"{self.base_url}/api/v1/query", params={"query": promql}, timeout=self.timeout_seconds
            )
            body = response.json()
        except (requests.RequestException, ValueError) as error:
            raise PrometheusUnavailable(f"Prometheus at {self.base_url} did not answer: {error}") from error
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusUnavailable(
                f"Prometheus refused query {promql!r}: HTTP {response.status_code} {body.get('error', '')}".strip()
            )
        result = body["data"]["result"]
        if body["data"].get("resultType") == "scalar":
            return [{"metric": {}, "value": result}]
        return result

    def query_value(self, promql: str) -> float:
        """One float, or PrometheusNoData. More than one series is a query bug: refuse it."""
        result = self.query(promql)
        if not result:
            raise PrometheusNoData(f"no data for {promql!r}")
        if len(result) > 1:
            raise ValueError(f"query {promql!r} returned {len(result)} series; expected one (aggregate it)")
        value = float(result[0]["value"][1])
        if math.isnan(value):
            raise PrometheusNoData(f"NaN for {promql!r}")
        return value

    def query_optional(self, promql: str) -> float | None:
        try:
            return self.query_value(promql)
        except PrometheusNoData:
            return None

    def is_online(self) -> bool:
        try:
            return self.session.get(f"{self.base_url}/-/ready", timeout=self.timeout_seconds).status_code == 200
        except requests.RequestException:
            return False
