"""A fake Prometheus for unit tests: the real PrometheusHook parsing canned HTTP answers, so the
hook's error mapping and everything above it (measure, judge, gate trigger) run without a server."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
import requests

from cutover_kit.hooks.prometheus import PrometheusHook

Answer = Callable[[str], requests.Response]  # promql -> HTTP answer (or raises a requests error)


def http_answer(status: int, body: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    response.encoding = "utf-8"
    return response


def vector(*values: str) -> requests.Response:
    """Prometheus' answer to an instant query: one series per value ("NaN", "abc" allowed)."""
    result = [{"metric": {"series": str(i)}, "value": [1700000000.0, value]} for i, value in enumerate(values)]
    return http_answer(200, {"status": "success", "data": {"resultType": "vector", "result": result}})


def healthy(green_errors: str = "0") -> Answer:
    """Both colors up, 1000 API requests each, p95/p99 20 ms; green answers ``green_errors`` 5xx."""
    def answer(promql: str) -> requests.Response:
        if promql.startswith("max(up"):
            return vector("1")
        if 'code=~"5.."' in promql:
            return vector(green_errors if 'color="green"' in promql else "0")
        if promql.startswith("sum(increase"):
            return vector("1000")
        if promql.startswith("histogram_quantile"):
            return vector("0.02")
        if promql.startswith("label_replace("):
            return vector()  # the whole list's batched query (cutover_kit.measure_vitals): no data
        raise AssertionError(f"unexpected query {promql!r}")
    return answer


class FakePrometheus(PrometheusHook):
    """PrometheusHook whose HTTP session is ``answer``; records every query it was asked."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("prometheus_fake", timeout_seconds=0.5)
        self.__dict__["base_url"] = "http://127.0.0.1:9"  # cached_property: no Connection lookup
        self.__dict__["session"] = self
        self.answer = answer
        self.queries: list[str] = []

    def get(self, url: str, params: dict[str, str], timeout: float) -> requests.Response:
        assert url == "http://127.0.0.1:9/api/v1/query" and timeout == 0.5
        self.queries.append(params["query"])
        return self.answer(params["query"])


@pytest.fixture
def prometheus() -> Callable[[Answer], FakePrometheus]:
    return FakePrometheus


@pytest.fixture
def answers():
    """The canned answers, for tests to build on: answers.vector, answers.http, answers.healthy."""
    class Answers:
        vector = staticmethod(vector)
        http = staticmethod(http_answer)
        healthy = staticmethod(healthy)
    return Answers
