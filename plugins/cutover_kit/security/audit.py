"""Stage 7's HTTP checks of one color (no Airflow): the passive ZAP-rule checks on every GET route
of the color's own OpenAPI document (path parameters filled with a sample id), the auth refusal
of every route that needs authentication (a missing and a wrong token must be refused), and the
error-leakage probes. Also the few passive checks stage 11 repeats at every traffic step.

The pure parts (which paths to probe, which routes are protected, what an auth answer means) are
separate from the requests, and tested on their own. Loopback only, one request per check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cutover_kit.load.target import loopback_base_url
from cutover_kit.security.findings import Finding, normalise
from cutover_kit.security.leakage import leakage_findings
from cutover_kit.security.passive import passive_findings
from cutover_kit.security.surface import METHODS, routes

OPENAPI_PATH = "/openapi.json"
_PARAM = re.compile(r"\{[^}]+\}")
# What a route that needs authentication may answer without a valid token: unauthorised,
# forbidden, or not there at all (a route not exposed is refused too).
REFUSALS = (401, 403, 404)
WRONG_TOKEN = "Bearer cutover-stage7-wrong-token"
DEFAULT_SMOKE_PATHS = ("/api/users/1", "/api/orders/1", "/definitely-not-a-route")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as the passive checks read it."""
    status: int
    headers: list[tuple[str, str]]
    text: str


# A function that sends one request: (method, path, extra headers) -> Answer.
Send = Callable[[str, str, Mapping[str, str]], Answer]


# --------------------------------------------------------------------------------------- pure


def route_key(method: str, path: str) -> str:
    """'GET /api/users/{}' for a method and an OpenAPI path (parameter names do not matter)."""
    return f"{method.upper()} {_PARAM.sub('{}', path)}"


def get_probes(document: Mapping[str, Any], sample_id: int) -> list[tuple[str, str]]:
    """(route, concrete path) for every GET operation of an OpenAPI document, path parameters
    filled with `sample_id`, in the document's order."""
    paths = document.get("paths")
    if not isinstance(paths, Mapping) or not paths:
        raise ValueError("not an OpenAPI document: no 'paths'")
    return [(route_key("get", path), _PARAM.sub(str(sample_id), path)) for path, item in paths.items() if "get" in item]


def secured_routes(document: Mapping[str, Any]) -> set[str]:
    """Routes the document marks as needing authentication (a non-empty `security` on the
    operation, or a non-empty top-level one the operation does not clear with `security: []`)."""
    default = bool(document.get("security"))
    found = set()
    for path, item in (document.get("paths") or {}).items():
        for method, operation in item.items():
            if method in METHODS and isinstance(operation, Mapping):
                if bool(operation["security"]) if "security" in operation else default:
                    found.add(route_key(method, path))
    return found


def concrete_path(route: str, sample_id: int) -> tuple[str, str]:
    """('GET', '/api/admin/users/1') from 'GET /api/admin/users/{}' (or '{id}')."""
    method, _, path = route.partition(" ")
    return method, _PARAM.sub(str(sample_id), path)


def auth_findings(color: str, route: str, answers: Mapping[str, Answer]) -> list[Finding]:
    """A finding when a route that needs authentication answered a request without a valid token
    (`answers`: 'no token' / 'a wrong token' -> the answer) with anything but a refusal."""
    let_in = {how: answer for how, answer in answers.items() if answer.status not in REFUSALS}
    if not let_in:
        return []
    how, answer = next(iter(let_in.items()))
    others = f" (also with {', '.join(list(let_in)[1:])})" if len(let_in) > 1 else ""
    # The size and type of what it gave away, never the content: the halt reason travels to logs,
    # notifications and the report, and must not spread the data the route leaks.
    content_type = next((value for name, value in answer.headers if name.lower() == "content-type"), "no content type")
    return [normalise({"id": "auth-unauthenticated-access", "severity": "high", "color": color, "where": route,
                       "evidence": f"HTTP {answer.status} with {how}{others}, expected one of {list(REFUSALS)}; "
                                   f"answered {len(answer.text.encode())} bytes of {content_type.split(';')[0]}"})]


def protected_routes_of(documents: Iterable[Mapping[str, Any]], declared: Iterable[str]) -> list[str]:
    """The plan's protected routes plus every route either color's document marks secured."""
    found = set(declared)
    for document in documents:
        found |= secured_routes(document)
    return sorted(found)


def smoke_security_failure(findings: list[Finding], blocking_severity: str) -> str | None:
    """Stage 11's verdict on its passive checks: None when green is clean enough, else one line
    naming the finding (rule id, route, evidence) that rolls the run back."""
    from cutover_kit.security.judge import HALT, judge_security

    verdict = judge_security(findings, blocking_severity, prefix="FAIL security")
    return verdict.reason if verdict.verdict == HALT else None


def finding_counts(findings: Iterable[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.color] = counts.get(finding.color, 0) + 1
    return counts


# --------------------------------------------------------------------------------------- I/O


def http_sender(base_url: str, own_headers: Mapping[str, str] | None = None, timeout_seconds: float = 5.0) -> Send:
    """A Send over requests to `base_url` (loopback only), always with `own_headers`."""
    import requests

    base = loopback_base_url(base_url)
    session = requests.Session()

    def send(method: str, path: str, headers: Mapping[str, str]) -> Answer:
        response = session.request(method, base + path, headers={**(own_headers or {}), **headers},
                                   timeout=timeout_seconds, allow_redirects=False)
        return Answer(response.status_code, list(response.raw.headers.items()), response.text)

    return send


def fetch_openapi(send: Send, color: str) -> dict[str, Any]:
    """The color's own OpenAPI document; ValueError (naming the color) when it has none."""
    answer = send("GET", OPENAPI_PATH, {})
    if answer.status != 200:
        raise ValueError(f"{color}: GET {OPENAPI_PATH} answered HTTP {answer.status}; the audit needs the app's OpenAPI document")
    try:
        document = json.loads(answer.text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{color}: {OPENAPI_PATH} is not JSON ({error})") from None
    routes(document)  # refuses a document without paths
    return document


def passive_route_findings(color: str, send: Send, document: Mapping[str, Any], sample_id: int) -> list[Finding]:
    findings = []
    for route, path in get_probes(document, sample_id):
        answer = send("GET", path, {})
        findings += passive_findings(color, "GET", f"http://127.0.0.1{path}", answer.status, answer.headers, answer.text,
                                     where=route)
    return findings


def auth_refusal_findings(color: str, send: Send, protected: Iterable[str], sample_id: int) -> list[Finding]:
    findings = []
    for route in protected:
        method, path = concrete_path(route, sample_id)
        answers = {"no token": send(method, path, {}), "a wrong token": send(method, path, {"Authorization": WRONG_TOKEN})}
        findings += auth_findings(color, route, answers)
    return findings


def audit_color(color: str, base_url: str, own_headers: Mapping[str, str], protected: Iterable[str],
                sample_id: int = 1) -> tuple[dict[str, Any], list[Finding]]:
    """(the color's OpenAPI document, its findings): passive checks on every GET route, auth
    refusal of the protected routes, error leakage probes."""
    send = http_sender(base_url, own_headers)
    document = fetch_openapi(send, color)
    findings = passive_route_findings(color, send, document, sample_id)
    findings += auth_refusal_findings(color, send, protected, sample_id)
    findings += leakage_findings(color, base_url, headers=dict(own_headers))
    return document, findings


def smoke_findings(color: str, send: Send, paths: Iterable[str], protected: Iterable[str], sample_id: int = 1) -> list[Finding]:
    """Stage 11's security part on one color: passive checks on a few GET paths, auth refusal of
    the protected routes (a weakness that appears after promotion must show here)."""
    findings = []
    for path in paths:
        answer = send("GET", path, {})
        findings += passive_findings(color, "GET", f"http://127.0.0.1{path}", answer.status, answer.headers, answer.text,
                                     where=f"GET {path}")
    return findings + auth_refusal_findings(color, send, protected, sample_id)
