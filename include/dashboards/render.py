"""Render include/dashboards/cutover.yaml to Grafana dashboard JSON (schema 39, Grafana 11).

    python include/dashboards/render.py           # writes include/dashboards/cutover.json
    python include/dashboards/render.py --check   # exit 1 if the committed JSON is stale

The JSON uses a `${datasource}` Prometheus variable, so it imports into any Grafana whose
Prometheus data source scrapes the sandbox (or production) with the same rules loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SPEC = HERE / "cutover.yaml"
OUTPUT = HERE / "cutover.json"
PANEL_KEYS = {"title", "unit", "queries", "requires"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
COLUMNS, WIDTH, HEIGHT = 2, 12, 8


def load_spec(path: Path = SPEC) -> dict[str, Any]:
    """The spec, checked: every panel has a title and at least one query with an expr."""
    spec = yaml.safe_load(path.read_text())
    for index, panel in enumerate(spec.get("panels") or []):
        unknown = set(panel) - PANEL_KEYS
        if unknown or not panel.get("title") or not panel.get("queries"):
            raise ValueError(f"{path.name} panel #{index}: needs title and queries, unknown keys {sorted(unknown)}")
        if any(not query.get("expr") for query in panel["queries"]):
            raise ValueError(f"{path.name} panel {panel['title']!r}: every query needs an expr")
    if not spec.get("panels"):
        raise ValueError(f"{path.name}: no panels")
    return spec


def render(spec: dict[str, Any]) -> dict[str, Any]:
    panels = []
    for index, panel in enumerate(spec["panels"]):
        description = f"Requires {panel['requires']}: empty until the apps export it." if panel.get("requires") else ""
        panels.append({
            "id": index + 1,
            "type": "timeseries",
            "title": panel["title"],
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"h": HEIGHT, "w": WIDTH, "x": (index % COLUMNS) * WIDTH, "y": (index // COLUMNS) * HEIGHT},
            "fieldConfig": {"defaults": {"unit": panel["unit"]}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
            "targets": [{"refId": chr(ord("A") + n), "datasource": DATASOURCE, "expr": " ".join(query["expr"].split()),
                         "legendFormat": query.get("legend", "")} for n, query in enumerate(panel["queries"])],
        })
    annotations = [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                    "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]
    annotations += [{"name": marker["name"], "datasource": DATASOURCE, "enable": True, "iconColor": "orange",
                     "expr": marker["expr"], "step": marker["step"], "titleFormat": marker["title"],
                     "tagKeys": "server", "useValueForTime": False} for marker in spec.get("annotations") or []]
    return {
        "uid": spec["uid"], "title": spec["title"], "schemaVersion": 39, "version": 1, "editable": True,
        "refresh": spec["refresh"], "time": {"from": spec["time_from"], "to": "now"}, "tags": ["cutover"],
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": annotations},
        "panels": panels,
    }


def rendered_text(spec: dict[str, Any]) -> str:
    return json.dumps(render(spec), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed JSON instead of writing it")
    args = parser.parse_args(argv)
    text = rendered_text(load_spec())
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python {Path(__file__).relative_to(HERE.parents[1])}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
