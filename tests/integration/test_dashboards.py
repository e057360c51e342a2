"""include/dashboards/: the committed Grafana JSON is the spec's rendering, and every panel's
query (and the step-marker annotation) answers with data from a real sandbox Prometheus under
traffic. A panel marked `requires: <metric>` is skipped with that reason, and fails once it gets
data (the mark is then stale)."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest
import requests

from cutover_kit.hooks.haproxy import HAProxyHook
from sandbox.traffic import TrafficGenerator

REPO_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("dashboard_render", REPO_ROOT / "include" / "dashboards" / "render.py")
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)
SPEC = render.load_spec()
QUERIES = [pytest.param(panel, query["expr"], id=f"{panel['title']} [{query.get('legend', '')}]")
           for panel in SPEC["panels"] for query in panel["queries"]]

pytestmark = pytest.mark.timeout(240)


def test_committed_json_is_the_rendering_of_the_spec() -> None:
    assert render.OUTPUT.read_text() == render.rendered_text(SPEC), "run python include/dashboards/render.py"


def test_every_panel_has_both_colors_or_a_traffic_split() -> None:
    for panel in SPEC["panels"]:
        exprs = " ".join(query["expr"] for query in panel["queries"])
        assert "color" in exprs or "haproxy_server" in exprs, panel["title"]


def query(sandbox, expr: str) -> dict:
    answer = requests.get(f"{sandbox.config.prometheus_url}/api/v1/query", params={"query": expr}, timeout=5).json()
    return answer


@pytest.fixture(scope="module")
def under_traffic(sandbox, use_connections_module):
    """Traffic through the router at 50 % green, after steps 0 -> 25 -> 50 % (step markers)."""
    router = HAProxyHook()
    generator = TrafficGenerator(sandbox.config.router_url, rps=40, max_seconds=120, seed=11)
    generator.start()
    try:
        for percent in (0, 25, 50):
            router.set_green_percent(percent)
            time.sleep(1.5)
        time.sleep(4)  # a few 1 s scrapes of every series into the 1 m rates
        yield sandbox
    finally:
        generator.stop()
        router.set_green_percent(0)


@pytest.fixture(scope="module")
def use_connections_module(sandbox):
    saved = dict(os.environ)
    for conn_id, connection in sandbox.connections().items():
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize(("panel", "expr"), QUERIES)
def test_panel_query_answers_with_data(under_traffic, panel: dict, expr: str) -> None:
    answer = query(under_traffic, " ".join(expr.split()))
    assert answer["status"] == "success", f"{panel['title']}: invalid query: {answer.get('error')}"
    result = answer["data"]["result"]
    if panel.get("requires"):
        assert result == [], f"{panel['title']} has data now: remove its `requires` mark"
        pytest.skip(f"requires {panel['requires']}")
    assert result, f"{panel['title']}: {expr} returned no series"
    labels = [series["metric"] for series in result]
    if "haproxy_server" in expr:
        assert {label.get("server") for label in labels} >= {"blue", "green"}, labels
    else:
        assert {label.get("color") for label in labels} == {"blue", "green"}, labels


def test_step_marker_annotation_marks_a_weight_change(under_traffic) -> None:
    # Its own step, so the change is inside the marker's 10 s changes() window whatever ran before.
    HAProxyHook().set_green_percent(25)
    for marker in SPEC["annotations"]:
        deadline = time.monotonic() + 5
        while True:
            answer = query(under_traffic, marker["expr"])
            assert answer["status"] == "success", f"{marker['name']}: invalid query: {answer.get('error')}"
            if answer["data"]["result"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert [series["metric"].get("server") for series in answer["data"]["result"]] == ["green"], \
            f"{marker['name']}: no step marker within 5 s of a weight change"
