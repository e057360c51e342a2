"""Write a record's report into a directory: one PNG per chart, report.html, record.json.

A chart that fails to build or render is named in the page ("chart not rendered: ...") and in the
returned ``chart_errors``; it never stops the page from being written. Re-running overwrites the
same files (idempotent).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cutover_kit.report.charts import CHARTS, render_png
from cutover_kit.report.page import render_html
from cutover_kit.report.record import RunRecord

log = logging.getLogger(__name__)
HTML_NAME = "report.html"
RECORD_NAME = "record.json"


def write_report(record: RunRecord, out_dir: Path) -> dict[str, Any]:
    """{"html": path, "charts": {name: path}, "record": path, "chart_errors": {name: why}}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name, build in CHARTS.items():
        path = out_dir / f"{name}.png"
        try:
            path.write_bytes(render_png(build(record)))
        except Exception as error:  # noqa: BLE001 - one broken chart must not cost the report
            errors[name] = f"{type(error).__name__}: {error}"
            log.warning("Report chart %s not rendered: %s", name, errors[name])
            continue
        charts[name] = str(path)
    record_path = out_dir / RECORD_NAME
    record_path.write_text(json.dumps(record.to_dict(), indent=1, sort_keys=True, default=str) + "\n")
    page = render_html(record, {name: Path(path).name for name, path in charts.items()}, errors, RECORD_NAME)
    html_path = out_dir / HTML_NAME
    html_path.write_text(page, encoding="utf-8")
    return {"html": str(html_path), "charts": charts, "record": str(record_path), "chart_errors": errors}
