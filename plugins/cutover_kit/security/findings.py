"""The normalised finding every check and scanner produces: {id, severity, color, where, evidence}.

`id` names the check ("zap-10021", "surface-only-green", "bandit-B602", "npm-GHSA-..."); severity
is one of SEVERITIES (scanners' own words are mapped, an unknown word is an error, never dropped);
`color` is blue, green or "code" (bandit and npm audit scan code, not a running color); `where`
is the route ("GET /api/users/{id}") or file and line; evidence is one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

SEVERITIES = ("info", "low", "medium", "high", "critical")
COLORS = ("blue", "green", "code")
EVIDENCE_CHARS = 300
# Scanners' severity words -> ours (ZAP risk names, bandit, npm audit, wapiti levels 1-4, CVSS words).
SEVERITY_WORDS = {
    "informational": "info", "info": "info", "none": "info", "undefined": "info", "0": "info",
    "low": "low", "1": "low",
    "medium": "medium", "moderate": "medium", "2": "medium",
    "high": "high", "3": "high",
    "critical": "critical", "4": "critical",
}


class FindingError(ValueError):
    """A raw finding that cannot be normalised; the message names the field."""


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    color: str
    where: str
    evidence: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        return f"[{self.severity}] {self.color} {self.id} at {self.where}: {self.evidence}"


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def normalise(raw: Mapping[str, Any]) -> Finding:
    """A Finding from a raw mapping; FindingError names a missing or unknown field."""
    missing = [name for name in ("id", "severity", "color", "where") if raw.get(name) in (None, "")]
    if missing:
        raise FindingError(f"finding {dict(raw)!r}: missing {missing}")
    word = str(raw["severity"]).strip().lower()
    if word not in SEVERITY_WORDS:
        raise FindingError(f"finding {raw['id']}: unknown severity {raw['severity']!r}")
    color = str(raw["color"])
    if color not in COLORS:
        raise FindingError(f"finding {raw['id']}: color must be one of {COLORS}, got {color!r}")
    evidence = " ".join(str(raw.get("evidence") or "").split())
    if len(evidence) > EVIDENCE_CHARS:
        evidence = evidence[: EVIDENCE_CHARS - 3] + "..."
    return Finding(str(raw["id"]), SEVERITY_WORDS[word], color, str(raw["where"]), evidence)
