"""Stage 4's rules check, pure: Prometheus' /api/v1/rules answer against the rule groups the
project ships (include/prometheus/rules/*.yml): every group loaded, every rule healthy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class RulesAnswerError(ValueError):
    """The /api/v1/rules answer is not Prometheus' documented shape."""


@dataclass(frozen=True)
class RuleGroupState:
    name: str
    file: str
    rules: int
    alerts: int
    unhealthy: tuple[str, ...]  # "rule: error" for health == "err"
    unevaluated: tuple[str, ...]  # health == "unknown": not evaluated yet (a fresh Prometheus)


@dataclass(frozen=True)
class RulesVerdict:
    ok: bool
    settled: bool  # False while only "not evaluated yet" stands between it and ok: worth asking again
    lines: tuple[str, ...]


def group_names(rule_files: Iterable[Any]) -> list[str]:
    """Group names of parsed rule files (each a dict with ``groups``), in file order; refuses a
    file without groups or a group without a name, naming it."""
    names = []
    for index, document in enumerate(rule_files):
        groups = document.get("groups") if isinstance(document, dict) else None
        if not isinstance(groups, list) or not groups:
            raise ValueError(f"rule file #{index} has no groups")
        for group in groups:
            if not isinstance(group, dict) or not group.get("name"):
                raise ValueError(f"rule file #{index} has a group without a name")
            names.append(str(group["name"]))
    return names


def parse_rule_groups(answer: Any) -> dict[str, RuleGroupState]:
    """Prometheus /api/v1/rules JSON -> group name -> state."""
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise RulesAnswerError(f"Prometheus /api/v1/rules did not answer success: {str(answer)[:200]}")
    groups = (answer.get("data") or {}).get("groups")
    if not isinstance(groups, list):
        raise RulesAnswerError("Prometheus /api/v1/rules answer has no data.groups list")
    states = {}
    for group in groups:
        rules = group.get("rules") if isinstance(group, dict) else None
        if not isinstance(rules, list):
            raise RulesAnswerError(f"rule group {group!r:.100} has no rules list")
        states[str(group.get("name"))] = RuleGroupState(
            name=str(group.get("name")), file=str(group.get("file", "")), rules=len(rules),
            alerts=sum(1 for rule in rules if rule.get("type") == "alerting"),
            unhealthy=tuple(f"{rule.get('name')}: {' '.join(str(rule.get('lastError') or 'unhealthy').split())}"
                            for rule in rules if rule.get("health") == "err"),
            unevaluated=tuple(str(rule.get("name")) for rule in rules if rule.get("health") not in ("ok", "err")),
        )
    return states


def judge_rules(states: dict[str, RuleGroupState], expected: Iterable[str]) -> RulesVerdict:
    """Every expected group loaded with every rule evaluated healthy; one line per group. Only
    "not evaluated yet" leaves the verdict unsettled (a fresh Prometheus): worth asking again."""
    lines, hard_failure, waiting = [], False, False
    for name in expected:
        state = states.get(name)
        if state is None:
            hard_failure = True
            lines.append(f"rule group {name!r} NOT loaded by Prometheus (loaded: {sorted(states) or 'none'})")
        elif state.unhealthy:
            hard_failure = True
            lines.append(f"rule group {name!r} ({state.file}) has failing rules: {'; '.join(state.unhealthy)}")
        elif state.unevaluated:
            waiting = True
            shown = ", ".join(state.unevaluated[:3]) + ("..." if len(state.unevaluated) > 3 else "")
            lines.append(f"rule group {name!r} ({state.file}): {len(state.unevaluated)} of {state.rules} rules not "
                         f"evaluated yet ({shown})")
        else:
            lines.append(f"rule group {name!r} loaded and healthy: {state.rules} rules ({state.alerts} alerts) "
                         f"from {state.file}")
    ok = not hard_failure and not waiting
    return RulesVerdict(ok=ok, settled=ok or hard_failure, lines=tuple(lines))
