"""Stage 4's dashboard check, pure: the panel queries of a Grafana dashboard JSON
(include/dashboards/cutover.json), and the verdict on what Prometheus answered for each.

A panel whose metrics the apps do not export yet carries a ``requires`` mark in the spec, which
include/dashboards/render.py writes into the panel's description ("Requires <what>: empty until
the apps export it."). Such a panel answering nothing is reported, not failed; every other panel
must answer at least one series, and a query Prometheus refuses always fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# The description render.py gives a panel marked `requires` in include/dashboards/cutover.yaml.
REQUIRES_DESCRIPTION = re.compile(r"^Requires (?P<what>.+): empty until the apps export it\.$")


class DashboardError(ValueError):
    """The dashboard JSON has no panels or a panel without a query."""


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str
    requires: str | None = None


@dataclass(frozen=True)
class QueryOutcome:
    """What Prometheus said: ``error`` (refused or unreachable) or the series' label sets."""

    query: PanelQuery
    error: str | None = None
    series: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class DashboardVerdict:
    ok: bool
    lines: tuple[str, ...]
    failed: tuple[str, ...] = ()
    not_met: tuple[str, ...] = field(default=())


def panel_queries(dashboard: Any) -> list[PanelQuery]:
    """Every target's expr of every panel, in order; DashboardError names a panel without one."""
    panels = dashboard.get("panels") if isinstance(dashboard, dict) else None
    if not isinstance(panels, list) or not panels:
        raise DashboardError("dashboard JSON has no panels")
    queries = []
    for index, panel in enumerate(panels):
        title = str(panel.get("title") or f"panel #{index + 1}")
        match = REQUIRES_DESCRIPTION.match(str(panel.get("description") or ""))
        targets = [target for target in panel.get("targets") or [] if isinstance(target, dict) and target.get("expr")]
        if not targets:
            raise DashboardError(f"dashboard panel {title!r} has no query")
        queries += [PanelQuery(title, str(target.get("refId", "?")), " ".join(str(target["expr"]).split()),
                               match.group("what") if match else None) for target in targets]
    return queries


def _colors(series: tuple[dict[str, str], ...]) -> str:
    found = sorted({labels.get("color") or labels.get("server") or "?" for labels in series})
    return ", ".join(found)


def judge_dashboard(outcomes: list[QueryOutcome]) -> DashboardVerdict:
    """One line per query; failed when a query is refused or an unmarked panel answers nothing."""
    lines, failed, not_met = [], [], []
    for outcome in outcomes:
        query = outcome.query
        name = f"panel {query.panel!r} [{query.ref_id}] {query.expr}"
        if outcome.error is not None:
            failed.append(name)
            lines.append(f"{name}: query FAILED: {outcome.error}")
        elif outcome.series:
            lines.append(f"{name}: {len(outcome.series)} series ({_colors(outcome.series)})")
        elif query.requires:
            not_met.append(name)
            lines.append(f"{name}: no data, as marked: requires {query.requires} (reported, not failed)")
        else:
            failed.append(name)
            lines.append(f"{name}: NO DATA: the panel would be empty in the war room")
    return DashboardVerdict(ok=not failed, lines=tuple(lines), failed=tuple(failed), not_met=tuple(not_met))
