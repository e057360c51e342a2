"""Passive HTTP checks keyed by OWASP ZAP baseline rule ids, as pure functions of one exchange
(method, url, status, headers, body) -> findings. Each follows its ZAP rule's scope, with ZAP's
default risk as the severity:

- 10020 anti-clickjacking (X-Frame-Options or CSP frame-ancestors), HTML responses, medium
- 10021 X-Content-Type-Options: nosniff missing, any response with a body, low
- 10035 Strict-Transport-Security missing, HTTPS responses only, low
- 10038 Content-Security-Policy missing, HTML responses, medium
- 10063 Permissions-Policy missing, HTML and JavaScript responses, low
- 10036 Server header with a version, low; 10037 X-Powered-By present, low
- 10010 cookie without HttpOnly, 10011 without Secure (HTTPS only), 10054 without SameSite, low
- 10098 Access-Control-Allow-Origin: * (or reflected with credentials), medium
- 90022 application error disclosure: a stack trace or framework error page in the body, medium
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from cutover_kit.security.findings import Finding, normalise


class Exchange:
    """One request and its answer; header names are case-insensitive."""

    def __init__(self, method: str, url: str, status: int, headers: Mapping[str, Any] | list[tuple[str, str]],
                 body: str | bytes, where: str | None = None) -> None:
        self.method = method.upper()
        self.url = url
        self.status = int(status)
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        self.header_list = [(str(name).lower(), str(value)) for name, value in pairs]
        self.body = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
        self.where = where or f"{self.method} {urlsplit(url).path or '/'}"
        self.https = urlsplit(url).scheme == "https"

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return ", ".join(values) if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.header_list if key == name.lower()]

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    @property
    def is_html(self) -> bool:
        return self.content_type in ("text/html", "application/xhtml+xml")


SERVER_VERSION = re.compile(r"[A-Za-z][\w.-]*/\d|\b\d+\.\d+")
# 90022: what an error page shows when it leaks internals (ZAP's list plus the three stacks here).
ERROR_DISCLOSURE = [
    (re.compile(r"Traceback \(most recent call last\)"), "Python traceback"),
    (re.compile(r"File \"[^\"]+\.py\", line \d+"), "Python stack frame"),
    (re.compile(r"\bat [\w$.<>]+ \((?:file://)?/[^)]+\.[cm]?[jt]s:\d+:\d+\)"), "Node.js stack frame"),
    (re.compile(r"at (?:node:|/)[^\s]+\.[cm]?[jt]s:\d+:\d+"), "Node.js stack frame"),
    (re.compile(r"/[\w/.-]+\.rb:\d+:in `"), "Ruby stack frame"),
    (re.compile(r"ActionController::|ActiveRecord::[A-Z]\w+|ActionDispatch::"), "Rails exception class"),
    (re.compile(r"<title>Action Controller: Exception caught</title>|Rails\.root:"), "Rails error page"),
    (re.compile(r"Werkzeug Debugger|Express</title>|Cannot (?:GET|POST) /"), "framework error page"),
    (re.compile(r"psycopg2\.\w+|PG::[A-Z]\w+|SQLSTATE\[|syntax error at or near", re.I), "database error text"),
    (re.compile(r"java\.lang\.\w+Exception|Microsoft OLE DB Provider|ORA-\d{5}"), "platform error text"),
]


def check_10020(x: Exchange) -> list[dict]:
    csp = x.header("content-security-policy") or ""
    if x.is_html and not x.header("x-frame-options") and "frame-ancestors" not in csp:
        return [_raw("10020", "medium", x, "no X-Frame-Options or CSP frame-ancestors on an HTML response")]
    return []


def check_10021(x: Exchange) -> list[dict]:
    if x.body and (x.header("x-content-type-options") or "").strip().lower() != "nosniff":
        return [_raw("10021", "low", x, f"X-Content-Type-Options is {x.header('x-content-type-options')!r}, not nosniff")]
    return []


def check_10035(x: Exchange) -> list[dict]:
    if x.https and not x.header("strict-transport-security"):
        return [_raw("10035", "low", x, "HTTPS response without Strict-Transport-Security")]
    return []


def check_10038(x: Exchange) -> list[dict]:
    if x.is_html and not x.header("content-security-policy"):
        return [_raw("10038", "medium", x, "HTML response without Content-Security-Policy")]
    return []


def check_10063(x: Exchange) -> list[dict]:
    scripted = x.is_html or x.content_type in ("application/javascript", "text/javascript")
    if scripted and not x.header("permissions-policy"):
        return [_raw("10063", "low", x, f"{x.content_type} response without Permissions-Policy")]
    return []


def check_10036(x: Exchange) -> list[dict]:
    server = x.header("server")
    if server and SERVER_VERSION.search(server):
        return [_raw("10036", "low", x, f"Server: {server}")]
    return []


def check_10037(x: Exchange) -> list[dict]:
    powered = x.header("x-powered-by")
    return [_raw("10037", "low", x, f"X-Powered-By: {powered}")] if powered else []


def _cookies(x: Exchange) -> list[tuple[str, set[str], str]]:
    found = []
    for value in x.all("set-cookie"):
        name = value.split("=", 1)[0].strip()
        attributes = {part.split("=", 1)[0].strip().lower() for part in value.split(";")[1:]}
        found.append((name, attributes, value))
    return found


def check_10010(x: Exchange) -> list[dict]:
    return [_raw("10010", "low", x, f"cookie {name} without HttpOnly") for name, attrs, _ in _cookies(x) if "httponly" not in attrs]


def check_10011(x: Exchange) -> list[dict]:
    if not x.https:
        return []
    return [_raw("10011", "low", x, f"cookie {name} without Secure") for name, attrs, _ in _cookies(x) if "secure" not in attrs]


def check_10054(x: Exchange) -> list[dict]:
    return [_raw("10054", "low", x, f"cookie {name} without SameSite") for name, attrs, _ in _cookies(x) if "samesite" not in attrs]


def check_10098(x: Exchange) -> list[dict]:
    origin = (x.header("access-control-allow-origin") or "").strip()
    if origin == "*":
        return [_raw("10098", "medium", x, "Access-Control-Allow-Origin: * (any site may read the answer)")]
    if origin == "null" or (origin and (x.header("access-control-allow-credentials") or "").lower() == "true"
                            and origin not in ("http://127.0.0.1", "https://127.0.0.1")):
        return [_raw("10098", "medium", x, f"Access-Control-Allow-Origin: {origin} with credentials")]
    return []


def check_90022(x: Exchange) -> list[dict]:
    for pattern, what in ERROR_DISCLOSURE:
        found = pattern.search(x.body)
        if found:
            start = max(found.start() - 40, 0)
            return [_raw("90022", "medium", x, f"{what} in a {x.status} answer: ...{x.body[start:found.end() + 60]}...")]
    return []


CHECKS: dict[str, Callable[[Exchange], list[dict]]] = {
    rule: globals()[f"check_{rule}"]
    for rule in ("10020", "10021", "10035", "10038", "10063", "10036", "10037", "10010", "10011", "10054", "10098", "90022")
}


def passive_findings(color: str, method: str, url: str, status: int, headers, body, where: str | None = None,
                     rules: tuple[str, ...] | None = None) -> list[Finding]:
    """Every passive check (or `rules`) over one exchange, as normalised findings of `color`."""
    exchange = Exchange(method, url, status, headers, body, where)
    unknown = set(rules or ()) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown passive rule ids {sorted(unknown)}; known: {sorted(CHECKS)}")
    return [normalise({**raw, "color": color}) for rule in (rules or CHECKS) for raw in CHECKS[rule](exchange)]


def _raw(rule: str, severity: str, x: Exchange, evidence: str) -> dict:
    return {"id": f"zap-{rule}", "severity": severity, "where": x.where, "evidence": evidence}
