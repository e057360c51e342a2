"""Stage 4's task module without Airflow running: the routing test's id is a plain matcher value
made from the run id, unique per attempt, and the files the checks read are the shipped ones."""

from __future__ import annotations

from cutover_kit.observability.routing import synthetic_alert
from cutover_kit.stages import monitoring


def test_the_routing_test_id_is_plain_and_unique_per_attempt() -> None:
    first = monitoring._test_id('manual__2026-12-08T02:30:00+00:00 "quoted"')
    second = monitoring._test_id('manual__2026-12-08T02:30:00+00:00 "quoted"')
    assert first.startswith("manual__2026-12-08T02:30:00+00:00__quoted_.") and first != second
    synthetic_alert(first, 0.0)  # accepted as a label value and a matcher


def test_the_checks_read_the_shipped_rules_and_dashboard() -> None:
    assert sorted(path.name for path in monitoring.RULES_DIR.glob("*.yml")) == ["cutover.yml", "slo.yml"]
    assert monitoring.DASHBOARD_FILE.is_file()
