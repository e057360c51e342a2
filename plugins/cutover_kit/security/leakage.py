"""Error-leakage probes: requests that make an app answer 404, 405, 400 or 500 (unknown path,
wrong method, malformed JSON, an id past the column's range, a body of the wrong type), answered
by one color and checked by ZAP rule 90022 (stack trace or framework banner) plus the banner
headers (10036, 10037). Bounded: a fixed probe list, one request each, loopback only."""

from __future__ import annotations

from dataclasses import dataclass

from cutover_kit.load.target import loopback_base_url
from cutover_kit.security.findings import Finding
from cutover_kit.security.passive import passive_findings

LEAKAGE_RULES = ("90022", "10036", "10037")


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    body: bytes | None
    why: str


PROBES = (
    Probe("GET", "/definitely-not-a-route", None, "unknown path (404)"),
    Probe("DELETE", "/api/orders/1", None, "known path, wrong method (405)"),
    Probe("POST", "/api/orders", b'{"user_id": 1, "amount_cents": ', "truncated JSON"),
    Probe("POST", "/api/orders", b'["not", "an", "object"]', "JSON of the wrong type"),
    Probe("POST", "/api/users", b'{"email": {"$gt": ""}}', "object where a string belongs"),
    Probe("GET", "/api/users/999999999999999999", None, "id past the database column"),
    Probe("GET", "/api/orders/1%27%20OR%201=1--", None, "quote in a path parameter"),
)


def leakage_findings(color: str, base_url: str, timeout_seconds: float = 5.0,
                     headers: dict[str, str] | None = None) -> list[Finding]:
    """`headers` go with every probe (X-Cutover-Serve: the color's own code on a direct request)."""
    import requests

    base = loopback_base_url(base_url)
    findings = []
    for probe in PROBES:
        response = requests.request(probe.method, base + probe.path, data=probe.body, timeout=timeout_seconds,
                                    headers={**(headers or {}), **({"Content-Type": "application/json"} if probe.body is not None else {})})
        findings += passive_findings(color, probe.method, base + probe.path, response.status_code,
                                     list(response.raw.headers.items()), response.content,
                                     where=f"{probe.method} {probe.path} ({probe.why})", rules=LEAKAGE_RULES)
    return findings
