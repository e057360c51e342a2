"""Smoke checks: a fixed request list (include/smoke/checks.yaml) and the pure judging of answers."""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cutover_kit.yaml_loader import YAMLFileError, load_yaml

from cutover_kit import connections
from cutover_kit.flags.model import TYPESCRIPT
from cutover_kit.paths import REPO_ROOT

# Green honours this header on direct (non-router) requests by serving from its own (TypeScript)
# code even where its feature flags would forward to Rails; HAProxy strips it from client traffic.
# Every direct smoke or parity request to green sends it (stage 11, the scheduled smoke DAG).
SERVE_HEADER = "X-Cutover-Serve"
GREEN_OWN_CODE_HEADERS = {SERVE_HEADER: TYPESCRIPT}

DEFAULT_CHECKS_FILE = REPO_ROOT / "include" / "smoke" / "checks.yaml"
ALLOWED_METHODS = {"GET", "POST", "PUT", "DELETE"}


class SmokeCheckError(ValueError):
    """The smoke check file is malformed."""


@dataclass(frozen=True)
class SmokeCheck:
    name: str
    method: str
    path: str
    expect_status: int
    body: Any = None
    expect_keys: tuple[str, ...] = ()
    expect_values: dict[str, Any] = field(default_factory=dict)
    remember: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmokeResult:
    check: str
    target: str
    ok: bool
    line: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "target": self.target, "ok": self.ok, "line": self.line}


def load_checks(path: Path = DEFAULT_CHECKS_FILE) -> list[SmokeCheck]:
    try:
        document = load_yaml(path)
    except YAMLFileError as error:
        raise SmokeCheckError(f"smoke checks {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("checks"), list) or not document["checks"]:
        raise SmokeCheckError(f"smoke checks {path}: 'checks' must be a non-empty list")
    allowed = set(SmokeCheck.__dataclass_fields__)
    checks = []
    remembered: set[str] = set()
    for index, raw in enumerate(document["checks"]):
        where = f"smoke checks {path}: checks[{index}]"
        if not isinstance(raw, dict):
            raise SmokeCheckError(f"{where} must be a mapping")
        unknown = set(raw) - allowed
        if unknown:
            raise SmokeCheckError(f"{where} has unknown fields {sorted(unknown)}")
        for required in ("name", "method", "path", "expect_status"):
            if required not in raw:
                raise SmokeCheckError(f"{where}.{required} is required")
        if raw["method"] not in ALLOWED_METHODS:
            raise SmokeCheckError(f"{where}.method {raw['method']!r} is not one of {sorted(ALLOWED_METHODS)}")
        if not isinstance(raw["expect_status"], int) or isinstance(raw["expect_status"], bool):
            raise SmokeCheckError(f"{where}.expect_status must be an integer")
        if not isinstance(raw["path"], str) or not raw["path"].startswith("/"):
            raise SmokeCheckError(f"{where}.path must be text starting with '/'; got {raw['path']!r}")
        expect_keys = raw.get("expect_keys") or []
        if not isinstance(expect_keys, list) or not all(isinstance(key, str) for key in expect_keys):
            raise SmokeCheckError(f"{where}.expect_keys must be a list of field names")
        for mapping in ("expect_values", "remember"):
            if not isinstance(raw.get(mapping) or {}, dict):
                raise SmokeCheckError(f"{where}.{mapping} must be a mapping")
        # A path filled from an earlier check's answer must name a value some earlier check
        # remembers; otherwise the check could only fail, at the first traffic step.
        try:
            needed = path_fields(raw["path"])
        except ValueError as error:
            raise SmokeCheckError(f"{where}.path {raw['path']!r} is not a valid template: {error}") from error
        unknown_fields = sorted(needed - remembered)
        if unknown_fields:
            raise SmokeCheckError(
                f"{where}.path {raw['path']!r} uses {unknown_fields}, which no earlier check remembers "
                f"(remembered so far: {sorted(remembered) or 'nothing'})"
            )
        remembered |= set(raw.get("remember") or {})
        checks.append(
            SmokeCheck(
                name=str(raw["name"]),
                method=raw["method"],
                path=str(raw["path"]),
                expect_status=raw["expect_status"],
                body=raw.get("body"),
                expect_keys=tuple(raw.get("expect_keys") or ()),
                expect_values=dict(raw.get("expect_values") or {}),
                remember=dict(raw.get("remember") or {}),
            )
        )
    return checks


def path_fields(template: str) -> set[str]:
    """The ``{name}`` fields of a path template; ValueError when the template is malformed."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render_path(template: str, memory: dict[str, Any]) -> str | None:
    """Fill ``{order_id}``-style fields from earlier checks; None when a field is unknown."""
    fields = path_fields(template)
    if not fields <= memory.keys():
        return None
    return template.format(**memory)


def judge_answer(check: SmokeCheck, target: str, status: int | None, body: Any, error: str | None, elapsed_ms: float) -> SmokeResult:
    where = f"{target} {check.method} {check.path}"
    if status is None:
        return SmokeResult(check.name, target, False, f"FAIL {check.name} on {where}: {error}")
    if status != check.expect_status:
        kind = f" ({status // 100}xx)" if status >= 400 else ""
        return SmokeResult(check.name, target, False, f"FAIL {check.name} on {where}: HTTP {status}{kind}, expected {check.expect_status}")
    if check.expect_keys or check.expect_values:
        if not isinstance(body, dict):
            return SmokeResult(check.name, target, False, f"FAIL {check.name} on {where}: body is not a JSON object")
        missing = [key for key in check.expect_keys if key not in body]
        if missing:
            return SmokeResult(check.name, target, False, f"FAIL {check.name} on {where}: missing keys {missing}")
        wrong = {k: body.get(k) for k, v in check.expect_values.items() if body.get(k) != v}
        if wrong:
            return SmokeResult(check.name, target, False, f"FAIL {check.name} on {where}: got {wrong}, expected {check.expect_values}")
    return SmokeResult(check.name, target, True, f"ok {check.name} on {where}: HTTP {status} in {elapsed_ms:.0f} ms")


def run_checks(checks: list[SmokeCheck], target: str, send: Callable[[str, str, Any], Any]) -> list[SmokeResult]:
    """Run checks in order against one target. ``send(method, path, body)`` returns a Probe-like
    object (status, body, error, elapsed_ms). A check whose path needs an unknown value fails."""
    memory: dict[str, Any] = {}
    results = []
    for check in checks:
        path = render_path(check.path, memory)
        if path is None:
            results.append(SmokeResult(check.name, target, False, f"FAIL {check.name} on {target}: an earlier check did not provide {check.path}"))
            continue
        probe = send(check.method, path, check.body)
        result = judge_answer(check, target, probe.status, probe.body, probe.error, probe.elapsed_ms)
        results.append(result)
        if result.ok and isinstance(probe.body, dict):
            memory.update({name: probe.body.get(key) for name, key in check.remember.items()})
    return results


def direct_request_headers(conn_id: str) -> dict[str, str] | None:
    """Headers for a direct smoke request to `conn_id`: green is asked to serve its own code
    (whatever the flags say), blue and the router get none (through the router the flags decide)."""
    return dict(GREEN_OWN_CODE_HEADERS) if conn_id == connections.APP_GREEN else None


def judge_step_smoke(step_label: str, results: list[SmokeResult], targets: tuple[str, ...],
                     data: Any = None, data_error: str | None = None,
                     other_failures: Sequence[str] = ()) -> tuple[str, str]:
    """Stage 11's verdict and reason for one traffic step: its request checks, and its first look
    at the data written since the step's weights changed (``data``: an
    :class:`cutover_kit.integrity.IntegrityJudgement`, None when not probed; ``data_error``: why
    the probe could not read; ``other_failures``: lines of further failed checks, e.g. stage 7's
    passive security checks).

    A data violation leads the reason, in the gate's words (``data: orders id ...``): it names the
    row, where a failed read-back is only its symptom. A probe that could not read never fails the
    smoke (the gate's every poll probes again, and makes an unknown INCONCLUSIVE); the line says so.
    """
    failures = [result.line for result in results if not result.ok] + list(other_failures)
    if data is not None and not data.intact:
        also = f"; {len(failures)} smoke check(s) failed too: {'; '.join(failures)}" if failures else ""
        from cutover_kit.integrity import FIRST_LOOK_MARK

        return "FAIL", f"{data.reason} ({FIRST_LOOK_MARK}){also}"
    if failures:
        return "FAIL", f"Smoke at {step_label}: " + "; ".join(failures)
    reason = f"Smoke at {step_label}: {len(results)} checks ok on {', '.join(targets)}"
    if data is not None:
        reason += f"; {data.reason}"
    elif data_error:
        reason += f"; data not checked here, the gate's polls will: {data_error}"
    return "PASS", reason
