"""PrometheusHook: instant PromQL queries as floats, with "no data" distinct from failure.

Modelled on Flagger's metrics providers: a query returns one float or raises one of three typed
errors, all :class:`PrometheusError`: :class:`PrometheusNoData` (the series does not exist or is
NaN), :class:`PrometheusUnavailable` (Prometheus did not answer, timed out or refused the query;
its subclass :class:`PrometheusBadQuery` when Prometheus itself says the query is wrong) and :class:`PrometheusBadAnswer` (it answered, but not with one number: several series, a
non-number, a body that is not Prometheus JSON). Callers decide what each means; the SLO gate
treats every one as INCONCLUSIVE, never as healthy.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.hooks import http_base_url


class PrometheusError(Exception):
    """A query gave no usable number. ``kind`` names what happened, for one-line reasons."""

    kind = "Prometheus error"


class PrometheusNoData(PrometheusError, LookupError):
    """The query ran but returned no sample (or NaN, e.g. a quantile of zero requests)."""

    kind = "no data"


class PrometheusUnavailable(PrometheusError, RuntimeError):
    """Prometheus did not answer (refused connection, timeout), or answered with an error."""

    kind = "Prometheus unavailable"


class PrometheusBadQuery(PrometheusUnavailable):
    """Prometheus answered 400 (bad_data: the query does not parse) or 422 (it cannot be executed,
    e.g. a many-to-many match): the query is at fault, not Prometheus, so asking again will not
    help. A PrometheusUnavailable for callers that only care that there is no number."""

    kind = "Prometheus refused the query"


class PrometheusBadAnswer(PrometheusError, ValueError):
    """Prometheus answered, but not with one number: several series, a non-number, not its JSON."""

    kind = "Prometheus bad answer"


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
        """Run an instant query; return the raw result vector (a scalar becomes one sample)."""
        data = self._api_data("query", {"query": promql}, promql)
        result = data["result"]
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": result}]
        if not isinstance(result, list):
            raise PrometheusBadAnswer(f"Prometheus answered {promql!r} with a {type(result).__name__} result, not a vector")
        return result

    def query_range(self, promql: str, start: float, end: float, step_seconds: float) -> list[dict[str, Any]]:
        """Run a range query (``/api/v1/query_range``) from ``start`` to ``end`` (epoch seconds) every
        ``step_seconds``; return the raw matrix: ``[{"metric": {...}, "values": [[t, "v"], ...]}]``.
        An empty matrix is no data (returned as []); errors map as for :meth:`query`."""
        if not end > start or step_seconds <= 0:
            raise ValueError(f"query_range {promql!r}: need start < end and a positive step; got {start}, {end}, {step_seconds}")
        data = self._api_data("query_range", {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                              "step": f"{step_seconds:g}"}, promql)
        result = data["result"]
        if data.get("resultType") != "matrix" or not isinstance(result, list):
            raise PrometheusBadAnswer(f"Prometheus answered range query {promql!r} with a {data.get('resultType')} result, not a matrix")
        return result

    def _api_data(self, endpoint: str, params: dict[str, str], promql: str) -> dict[str, Any]:
        """GET /api/v1/<endpoint>; the answer's ``data`` (with a ``result``) or a typed PrometheusError."""
        try:
            response = self.session.get(
                f"{self.base_url}/api/v1/{endpoint}", params=params, timeout=self.timeout_seconds
            )
        except requests.Timeout as error:
            raise PrometheusUnavailable(
                f"Prometheus at {self.base_url} did not answer {promql!r} within {self.timeout_seconds:g} s: {error}"
            ) from error
        except requests.RequestException as error:
            raise PrometheusUnavailable(f"Prometheus at {self.base_url} did not answer {promql!r}: {error}") from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            if response.status_code == 200 and not isinstance(body, dict):
                raise PrometheusBadAnswer(
                    f"Prometheus answered {promql!r} with HTTP 200 but no JSON object: {_snippet(response)}"
                )
            detail = body.get("error", "") if isinstance(body, dict) else _snippet(response)
            if response.status_code in (400, 422) and isinstance(body, dict) and body.get("status") == "error":
                raise PrometheusBadQuery(
                    f"Prometheus refused query {promql!r}: HTTP {response.status_code} {detail}".strip()
                )
            raise PrometheusUnavailable(
                f"Prometheus refused query {promql!r}: HTTP {response.status_code} {detail}".strip()
            )
        data = body.get("data")
        if not isinstance(data, dict) or "result" not in data:
            raise PrometheusBadAnswer(f"Prometheus answered {promql!r} without data.result: {_snippet(response)}")
        return data

    def query_value(self, promql: str) -> float:
        """One float, or a typed error: no sample / NaN is PrometheusNoData; several series (a query
        that forgot to aggregate) or a value that is not a number is PrometheusBadAnswer."""
        result = self.query(promql)
        if not result:
            raise PrometheusNoData(f"no data for {promql!r}")
        if len(result) > 1:
            raise PrometheusBadAnswer(
                f"query {promql!r} returned {len(result)} series; expected one (aggregate it)"
            )
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise PrometheusBadAnswer(
                f"query {promql!r} returned a sample that is not a number: {result[0]!r:.200}"
            ) from error
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


def _snippet(response: requests.Response, limit: int = 200) -> str:
    text = " ".join((response.text or "").split())
    return text[:limit] + ("..." if len(text) > limit else "")
