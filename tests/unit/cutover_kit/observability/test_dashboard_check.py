"""Stage 4's dashboard check, pure: the queries of the committed Grafana JSON and the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover_kit.observability.dashboards import DashboardError, QueryOutcome, judge_dashboard, panel_queries

DASHBOARD = Path(__file__).resolve().parents[4] / "include" / "dashboards" / "cutover.json"


def test_every_query_of_the_committed_dashboard_is_read_with_its_requires_mark() -> None:
    queries = panel_queries(json.loads(DASHBOARD.read_text()))
    assert len(queries) >= 11 and all(query.expr for query in queries)
    marked = {query.panel: query.requires for query in queries if query.requires}
    assert list(marked) == ["Database statement time (mean per call)"]
    assert marked["Database statement time (mean per call)"].startswith("pg_stat_statements per color")


def test_verdict_fails_on_a_refused_query_or_an_empty_unmarked_panel_and_reports_marked_ones() -> None:
    queries = panel_queries({"panels": [
        {"title": "p95", "targets": [{"refId": "A", "expr": "color:p95"}]},
        {"title": "db", "description": "Requires pg_stat_statements: empty until the apps export it.",
         "targets": [{"refId": "A", "expr": "color:db"}]},
        {"title": "cpu", "targets": [{"refId": "A", "expr": "color:cpu"}, {"refId": "B", "expr": "bad("}]},
    ]})
    outcomes = [QueryOutcome(queries[0], series=({"color": "blue"}, {"color": "green"})),
                QueryOutcome(queries[1]),
                QueryOutcome(queries[2]),
                QueryOutcome(queries[3], error="Prometheus refused query 'bad(': HTTP 400 parse error")]
    verdict = judge_dashboard(outcomes)
    assert not verdict.ok
    assert verdict.lines[0] == "panel 'p95' [A] color:p95: 2 series (blue, green)"
    assert verdict.lines[1] == "panel 'db' [A] color:db: no data, as marked: requires pg_stat_statements (reported, not failed)"
    assert verdict.failed == ("panel 'cpu' [A] color:cpu", "panel 'cpu' [B] bad(")
    assert judge_dashboard(outcomes[:2]).ok


def test_a_dashboard_without_panels_or_with_a_queryless_panel_is_refused() -> None:
    with pytest.raises(DashboardError, match="no panels"):
        panel_queries({"panels": []})
    with pytest.raises(DashboardError, match="'empty' has no query"):
        panel_queries({"panels": [{"title": "empty", "targets": []}]})
