"""The stage-7 judge: normalised findings of both colors in, verdict and one-line reason out. Pure.

Halt when green has a finding at or above the plan's blocking severity, or when any check is worse
on green than on blue (more findings of that id, or a higher severity). Findings on code (bandit,
npm audit) count as green's: the audited code ships with the rewrite.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from cutover_kit.security.findings import SEVERITIES, Finding, severity_rank

PASS = "pass"
HALT = "halt"


@dataclass(frozen=True)
class SecurityVerdict:
    verdict: str
    reason: str
    blocking: list[dict[str, str]] = field(default_factory=list)
    worse_than_blue: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_security(findings: list[Finding], blocking_severity: str, prefix: str = "Halt before traffic") -> SecurityVerdict:
    """`prefix` opens a halt's reason (stage 11 says where in the traffic it halted)."""
    if blocking_severity not in SEVERITIES:
        raise ValueError(f"security.blocking_severity must be one of {SEVERITIES}, got {blocking_severity!r}")
    threshold = severity_rank(blocking_severity)
    green = [f for f in findings if f.color in ("green", "code")]
    blocking = [f for f in green if severity_rank(f.severity) >= threshold]
    per_check: dict[str, dict[str, list[Finding]]] = defaultdict(lambda: {"blue": [], "green": []})
    for finding in findings:
        if finding.color in ("blue", "green"):
            per_check[finding.id][finding.color].append(finding)
    worse = []
    for check, sides in sorted(per_check.items()):
        g, b = sides["green"], sides["blue"]
        top = lambda side: max((severity_rank(f.severity) for f in side), default=-1)  # noqa: E731
        if len(g) > len(b) or top(g) > top(b):
            worse.append(f"{check}: green {len(g)} finding(s) vs blue {len(b)}, e.g. {g[0].where}: {g[0].evidence}")
    if blocking:
        first = blocking[0]
        more = f" (+{len(blocking) - 1} more)" if len(blocking) > 1 else ""
        reason = f"{prefix}: {first.severity} {first.id} on {first.color} at {first.where}: {first.evidence}{more}"
        return SecurityVerdict(HALT, reason, [f.as_dict() for f in blocking], worse)
    if worse:
        more = f" (+{len(worse) - 1} more checks)" if len(worse) > 1 else ""
        return SecurityVerdict(HALT, f"{prefix}: green worse than blue on {worse[0]}{more}", [], worse)
    counts = {color: sum(1 for f in findings if f.color == color) for color in ("blue", "green", "code")}
    return SecurityVerdict(PASS, f"Security ok: no {blocking_severity}+ finding on green, no check worse than blue"
                                 f" (findings: blue {counts['blue']}, green {counts['green']}, code {counts['code']})")
