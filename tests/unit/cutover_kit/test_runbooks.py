"""Every halt line names the runbook section to read, appended at the end: the leading text stays
what tests, docs and the console match on, and every section named exists in docs/runbooks/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cutover_kit.runbooks import SEPARATOR, all_references, halt_runbook, level_runbook, with_runbook

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("line, section", [
    ("Halt at 25 %: green 5xx 19.8 % > 1.0 % over 10 s, 400 requests (2 breaches in a row)", "rollback.md#error-rate"),
    ("Halt at 25 %: green 5xx 3.0 % vs blue 0.1 % (> +0.5 pp) over 10 s, 400 requests (2 breaches in a row)",
     "rollback.md#error-rate"),
    ("Halt at 50 %: green p95 180 ms vs blue 20 ms (x9.00 > x1.5) (2 breaches in a row)", "rollback.md#latency"),
    ("Halt at 25 %: green memory 412 MiB > 1.5 x blue 210 MiB; APM, slowest vs blue: GET /api/users/{id} p95 29 ms "
     "vs 20 ms (x1.46) (2 breaches in a row)", "rollback.md#whole-list-limit"),
    ("Halt at 5 %: green job rate 0.10 jobs/request < 0.9 x blue 0.30 jobs/request (2 breaches in a row)",
     "rollback.md#whole-list-limit"),
    ("Halt at 50 %: green failed jobs 33.3 % vs blue 0.0 % (> +2.0 pp, 90 green jobs) (2 breaches in a row)",
     "rollback.md#whole-list-limit"),
    ("Halt at 50 %: green 5xx 3.0 % > 1.0 %; green CPU 15.00 ms CPU/request > 2 x blue 5.00 ms CPU/request",
     "rollback.md#error-rate"),
    # Two causes: the first one the judge names wins.
    ("Halt at 50 %: green p95 180 ms vs blue 20 ms (x9.00 > x1.5); green 5xx 3.0 % > 1.0 %", "rollback.md#latency"),
    ("Halt at 5 %: green is down (metrics target not answering) (2 breaches in a row)", "rollback.md#app-down"),
    ("Halt at 25 %: blue p95 90 ms regressed vs its baseline 20 ms (x4.50 > x2) (2 breaches in a row)",
     "rollback.md#blue-regressed"),
    ("Give up at 25 %: step timeout before a full bake of healthy verdicts (0 s healthy); last: only 3 green requests",
     "rollback.md#no-verdict"),
    ("Halt at 5 %: Smoke at 5 %: FAIL router GET /api/users/1 -> 500", "rollback.md#smoke-check-failed"),
    ("Halt at 25 %: the gate itself failed, so green is not judged: KeyError: 'labels'",
     "incident-response.md#the-gate-itself-failed"),
    ("Halt at 50 %: emergency rollback by alice at 12:00:00 UTC (manual__1): green 5xx on checkout",
     "emergency-rollback.md#after-an-emergency-stop"),
    ("Halt at 5 %: task(s) failed: stage_12_blue_monitoring.capture_blue_baseline", "rollback.md#a-task-failed"),
    ("Halt before any traffic moved: GX validation failed: 2 of 34 expectations", "rollback.md#data-validation-failed"),
    ("Halt at 25 %: data: orders id 4711 amount_cents 1999 != amount 1999.00 (old vs new column; 3 such orders rows "
     "since the step began) (a data violation halts at once)", "rollback.md#data-lost-or-corrupted-during-traffic"),
    # Found by stage 11: the data leads, the failed read-back after it is only its symptom.
    ("Halt at 25 %: data: orders id 12 acknowledged to a client but not in the database (1 of 4 acknowledged writes "
     "since the step began missing) (found by stage 11, the step's first look at its rows); 1 smoke check(s) failed "
     "too: FAIL read back order on app_green GET /api/orders/12: HTTP 404 (4xx), expected 200",
     "rollback.md#data-lost-or-corrupted-during-traffic"),
    ("Halt at 5 %: something nobody foresaw", "incident-response.md#a-halt-this-runbook-does-not-name"),
])
def test_each_halt_cause_names_its_section(line, section):
    assert halt_runbook(line) == f"docs/runbooks/{section}"
    annotated = with_runbook(line)
    assert annotated.startswith(line) and annotated.endswith(f"{SEPARATOR}docs/runbooks/{section}")


def test_with_runbook_is_idempotent_and_takes_a_given_section():
    once = with_runbook("Halt at 25 %: green 5xx 5.0 % > 1.0 %")
    assert with_runbook(once) == once
    assert with_runbook("Rollback level 2, traffic -> blue", level_runbook("traffic")).endswith(
        "docs/runbooks/rollback.md#level-2-traffic-to-blue")
    with pytest.raises(KeyError, match="no runbook section"):
        level_runbook("dns")


def github_anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


def test_every_section_named_exists_in_the_runbooks():
    missing = []
    for reference in all_references():
        path, anchor = reference.split("#")
        file = REPO_ROOT / path
        if not file.is_file() or anchor not in github_anchors(file.read_text()):
            missing.append(reference)
    assert missing == []
