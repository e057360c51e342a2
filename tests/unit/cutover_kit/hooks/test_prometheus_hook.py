"""PrometheusHook without Prometheus: every way a query can fail raises one typed PrometheusError
whose message names the query, never a bare ValueError."""

from __future__ import annotations

import pytest
import requests

from cutover_kit.hooks.prometheus import PrometheusBadAnswer, PrometheusError, PrometheusNoData, PrometheusUnavailable

QUERY = 'sum(increase(http_requests_total{color="green"}[10s]))'


def test_one_series_is_its_float(prometheus, answers):
    hook = prometheus(lambda promql: answers.vector("41.5"))
    assert hook.query_value(QUERY) == 41.5 and hook.queries == [QUERY]


def test_a_scalar_answer_is_one_value(prometheus, answers):
    hook = prometheus(lambda promql: answers.http(200, {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}))
    assert hook.query_value(QUERY) == 3.0


@pytest.mark.parametrize("answer", [[], ["NaN"]], ids=["no series", "NaN"])
def test_no_sample_or_nan_is_no_data(prometheus, answers, answer):
    hook = prometheus(lambda promql: answers.vector(*answer))
    with pytest.raises(PrometheusNoData, match="sum\\(increase"):
        hook.query_value(QUERY)
    assert hook.query_optional(QUERY) is None


def raises(error):
    def answer(promql):
        raise error
    return answer


CASES = {
    "several series": (lambda a: (lambda q: a.vector("1", "2", "3")), PrometheusBadAnswer, "returned 3 series; expected one"),
    "non-number": (lambda a: (lambda q: a.vector("many")), PrometheusBadAnswer, "not a number"),
    "sample without a value": (lambda a: (lambda q: a.http(200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}})),
                               PrometheusBadAnswer, "not a number"),
    "malformed JSON": (lambda a: (lambda q: a.http(200, "<html>proxy says hi")), PrometheusBadAnswer, "HTTP 200 but no JSON object: <html>proxy says hi"),
    "JSON without data": (lambda a: (lambda q: a.http(200, {"status": "success"})), PrometheusBadAnswer, "without data.result"),
    "refused query (HTTP 400)": (lambda a: (lambda q: a.http(400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"})),
                                 PrometheusUnavailable, "refused query .* HTTP 400 parse error at char 5"),
    "HTTP 503 from a proxy": (lambda a: (lambda q: a.http(503, "Service Unavailable")), PrometheusUnavailable, "refused query .* HTTP 503 Service Unavailable"),
    "error status in HTTP 200": (lambda a: (lambda q: a.http(200, {"status": "error", "error": "query timed out in expression evaluation"})),
                                 PrometheusUnavailable, "HTTP 200 query timed out"),
    "timeout": (lambda a: raises(requests.ReadTimeout("read timed out")), PrometheusUnavailable, "did not answer .* within 0.5 s"),
    "connection refused": (lambda a: raises(requests.ConnectionError("[Errno 111] Connection refused")), PrometheusUnavailable,
                           "did not answer .*Connection refused"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_every_failure_is_a_typed_error_naming_the_query(prometheus, answers, case):
    make_answer, error_type, message = CASES[case]
    hook = prometheus(make_answer(answers))
    with pytest.raises(error_type, match=message) as raised:
        hook.query_optional(QUERY)  # only "no data" is optional; failures still raise
    assert isinstance(raised.value, PrometheusError) and QUERY in str(raised.value)


class RangeSession:
    """The hook's HTTP session for range queries: records the request, answers ``response``."""

    def __init__(self, response):
        self.response, self.calls = response, []

    def get(self, url, params, timeout):
        self.calls.append((url, params))
        return self.response


def range_hook(response):
    from cutover_kit.hooks.prometheus import PrometheusHook

    hook = PrometheusHook("prometheus_fake", timeout_seconds=0.5)
    hook.__dict__["base_url"] = "http://127.0.0.1:9"
    hook.__dict__["session"] = RangeSession(response)
    return hook


def test_a_range_query_returns_the_matrix_and_sends_the_interval():
    from tests.unit.conftest import http_answer

    matrix = [{"metric": {}, "values": [[1000, "1"], [1005, "2"]]}]
    hook = range_hook(http_answer(200, {"status": "success", "data": {"resultType": "matrix", "result": matrix}}))
    assert hook.query_range(QUERY, 1000.0, 1010.0, 5) == matrix
    url, params = hook.session.calls[0]
    assert url == "http://127.0.0.1:9/api/v1/query_range"
    assert params == {"query": QUERY, "start": "1000.000", "end": "1010.000", "step": "5"}


def test_a_range_query_maps_failures_like_an_instant_one():
    from cutover_kit.hooks.prometheus import PrometheusBadQuery
    from tests.unit.conftest import http_answer

    refused = range_hook(http_answer(400, {"status": "error", "errorType": "bad_data", "error": "parse error"}))
    with pytest.raises(PrometheusBadQuery, match="parse error"):
        refused.query_range(QUERY, 1000.0, 1010.0, 5)
    vector = range_hook(http_answer(200, {"status": "success", "data": {"resultType": "vector", "result": []}}))
    with pytest.raises(PrometheusBadAnswer, match="not a matrix"):
        vector.query_range(QUERY, 1000.0, 1010.0, 5)
    asked = len(vector.session.calls)
    with pytest.raises(ValueError, match="start < end"):
        vector.query_range(QUERY, 1010.0, 1000.0, 5)
    assert len(vector.session.calls) == asked  # refused before asking
