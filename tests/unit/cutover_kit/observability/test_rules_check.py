"""Stage 4's rules check, pure: /api/v1/rules answers against the shipped group names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cutover_kit.observability.rules import RulesAnswerError, group_names, judge_rules, parse_rule_groups

RULES_DIR = Path(__file__).resolve().parents[4] / "include" / "prometheus" / "rules"


def answer(*groups: dict) -> dict:
    return {"status": "success", "data": {"groups": list(groups)}}


def group(name: str, *healths: str, error: str = "") -> dict:
    return {"name": name, "file": f"/rules/{name}.yml",
            "rules": [{"name": f"{name}_{i}", "health": health, "type": "alerting" if i == 0 else "recording",
                       "lastError": error if health == "err" else ""} for i, health in enumerate(healths)]}


def test_the_shipped_rule_files_name_their_groups() -> None:
    names = group_names(yaml.safe_load(path.read_text()) for path in sorted(RULES_DIR.glob("*.yml")))
    assert names == ["cutover", "cutover_slo"]


def test_loaded_and_healthy_groups_pass_with_one_line_each() -> None:
    verdict = judge_rules(parse_rule_groups(answer(group("cutover", "ok", "ok"), group("cutover_slo", "ok"))),
                          ["cutover", "cutover_slo"])
    assert verdict.ok and verdict.settled
    assert verdict.lines[0] == "rule group 'cutover' loaded and healthy: 2 rules (1 alerts) from /rules/cutover.yml"


def test_a_missing_group_or_a_failing_rule_fails_for_good() -> None:
    verdict = judge_rules(parse_rule_groups(answer(group("cutover", "ok", "err", error="many-to-many\nmatching"))),
                          ["cutover", "cutover_slo"])
    assert not verdict.ok and verdict.settled
    assert "has failing rules: cutover_1: many-to-many matching" in verdict.lines[0]
    assert verdict.lines[1] == "rule group 'cutover_slo' NOT loaded by Prometheus (loaded: ['cutover'])"


def test_rules_not_evaluated_yet_are_worth_asking_again() -> None:
    verdict = judge_rules(parse_rule_groups(answer(group("cutover", "ok", "unknown"))), ["cutover"])
    assert not verdict.ok and not verdict.settled
    assert "1 of 2 rules not evaluated yet (cutover_1)" in verdict.lines[0]


def test_a_malformed_answer_is_refused() -> None:
    with pytest.raises(RulesAnswerError):
        parse_rule_groups({"status": "error", "error": "boom"})
    with pytest.raises(ValueError, match="has no groups"):
        group_names([{"rules": []}])
