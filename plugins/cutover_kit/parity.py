"""Response parity between blue and green: a fixed request set (include/smoke/parity.yaml), and a
pure diff of two answers that reads as one line per differing field, with its JSON path:

    GET /api/orders/42: $.status: blue "paid" != green "PAID"

No Airflow and no network here: the smoke DAG's task (stages/smoke_run.py) sends the requests and
hands the answers to :func:`compare`.

Paths follow a small JSONPath subset: ``$`` is the body, ``.name`` a member (``["odd key"]`` when the
name is not an identifier), ``[3]`` an array element. Ignore patterns may use ``[*]`` (any element)
and ``.*`` (any member), e.g. ``$.orders[*].amount``. An ignored path is skipped whether it differs
in value, in type, or is present on one side only, and so is everything below it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover_kit.yaml_loader import YAMLFileError, load_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PARITY_FILE = REPO_ROOT / "include" / "smoke" / "parity.yaml"
# Only reads: a parity request goes to both colors, so a write would be made twice, and the
# second write's answer (a new id, a 409) would differ by construction.
READ_ONLY_METHODS = ("GET",)
MAX_LINES_PER_REQUEST = 20  # a wholly different body must not flood the task log
MAX_VALUE_CHARS = 80

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATTERN_TOKEN = re.compile(r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_]*|\*)|\[(?P<index>\d+|\*)\]|\["(?P<quoted>[^"\\]*)"\]""")
ABSENT = object()  # a member present on one side only


class ParityFileError(ValueError):
    """The parity request file is malformed; the message names the file and the entry."""


# ------------------------------------------------------------------------------------ paths


def member_path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if _IDENTIFIER.fullmatch(name) else f"{parent}[{json.dumps(name)}]"


def parse_pattern(pattern: str) -> tuple[str, ...]:
    """``$.orders[*].amount`` -> (".orders", "[*]", ".amount"); ValueError naming what is malformed.

    Members are kept as ``.name`` and indices as ``[i]``, so a member named "0" is not element 0.
    """
    if not isinstance(pattern, str) or not pattern.startswith("$"):
        raise ValueError(f"{pattern!r} must be a JSON path starting with $ (e.g. $.orders[*].amount)")
    tokens, position = [], 1
    while position < len(pattern):
        found = _PATTERN_TOKEN.match(pattern, position)
        if not found:
            raise ValueError(f"{pattern!r} is not a JSON path: cannot read {pattern[position:]!r} "
                             "(use .name, [\"name\"], [3], [*] or .*)")
        if found.group("name") is not None:
            tokens.append("." + found.group("name"))
        elif found.group("index") is not None:
            tokens.append(f"[{found.group('index')}]")
        else:
            tokens.append("." + found.group("quoted"))
        position = found.end()
    return tuple(tokens)


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """True when ``path`` is at or below ``pattern`` (a pattern ignores a whole subtree)."""
    if len(path) < len(pattern):
        return False
    for want, have in zip(pattern, path):
        if want == ".*":
            if not have.startswith("."):
                return False
        elif want == "[*]":
            if not have.startswith("["):
                return False
        elif want != have:
            return False
    return True


# ------------------------------------------------------------------------------------ diff


@dataclass(frozen=True)
class Difference:
    """One field that differs. ``blue``/``green`` are the values (ABSENT: missing on that side)."""

    path: str
    blue: Any
    green: Any
    kind: str  # "value", "type", "missing", "length", "status", "unreachable"

    def line(self) -> str:
        if self.kind == "length":
            return f"{self.path}: blue {self.blue} items != green {self.green} items"
        if self.kind == "type":
            return (f"{self.path}: blue {describe(self.blue)} ({json_type(self.blue)}) != "
                    f"green {describe(self.green)} ({json_type(self.green)})")
        return f"{self.path}: blue {describe(self.blue)} != green {describe(self.green)}"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass, but true is not 1 in JSON
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def diff_json(blue: Any, green: Any, ignore: tuple[str, ...] | list[str] = (), path: str = "$") -> list[Difference]:
    """Every difference between two JSON values, depth first, members in sorted order.

    Numbers compare by value (1 == 1.0) but never equal a boolean; arrays compare element by
    element, and a length difference is its own line (then the common prefix is compared).
    ``ignore`` holds JSON path patterns (see the module doc).
    """
    patterns = tuple(parse_pattern(pattern) for pattern in ignore)
    differences: list[Difference] = []
    _diff(blue, green, path, tuple(_tokens_of(path)), patterns, differences)
    return differences


def _tokens_of(path: str) -> tuple[str, ...]:
    return parse_pattern(path) if path != "$" else ()


def _diff(blue: Any, green: Any, path: str, tokens: tuple[str, ...], patterns: tuple[tuple[str, ...], ...],
          out: list[Difference]) -> None:
    if any(_matches(pattern, tokens) for pattern in patterns):
        return
    if blue is ABSENT or green is ABSENT:
        out.append(Difference(path, blue, green, "missing"))
        return
    blue_type, green_type = json_type(blue), json_type(green)
    if blue_type != green_type:
        out.append(Difference(path, blue, green, "type"))
        return
    if blue_type == "object":
        for name in sorted(set(blue) | set(green), key=str):
            _diff(blue.get(name, ABSENT), green.get(name, ABSENT), member_path(path, str(name)),
                  (*tokens, f".{name}"), patterns, out)
        return
    if blue_type == "array":
        if len(blue) != len(green):
            out.append(Difference(path, len(blue), len(green), "length"))
        for index, (left, right) in enumerate(zip(blue, green)):
            _diff(left, right, f"{path}[{index}]", (*tokens, f"[{index}]"), patterns, out)
        return
    if blue != green:
        out.append(Difference(path, blue, green, "value"))


# ------------------------------------------------------------------------------------ the request set


@dataclass(frozen=True)
class IgnoredPath:
    path: str
    reason: str


@dataclass(frozen=True)
class ParityRequest:
    name: str
    method: str
    path: str
    body: Any = None
    expect_status: int | None = None
    ignore: tuple[IgnoredPath, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class ParitySpec:
    source: str
    requests: tuple[ParityRequest, ...]
    ignore: tuple[IgnoredPath, ...] = ()

    def ignore_for(self, request: ParityRequest) -> tuple[str, ...]:
        return tuple(item.path for item in (*self.ignore, *request.ignore))


_SPEC_FIELDS = {"ignore", "requests"}
_REQUEST_FIELDS = {"name", "method", "path", "body", "expect_status", "ignore"}
_IGNORE_FIELDS = {"path", "reason"}


def load_parity(path: Path | str = DEFAULT_PARITY_FILE) -> ParitySpec:
    """Read and validate the parity file; ParityFileError names the file and the entry at fault."""
    path = Path(path)
    try:
        document = load_yaml(path)
    except YAMLFileError as error:
        raise ParityFileError(f"parity file {error}") from error
    return parse_parity(document, str(path))


def parse_parity(document: Any, source: str) -> ParitySpec:
    where = f"parity file {source}"
    if not isinstance(document, dict):
        raise ParityFileError(f"{where}: must be a mapping with 'requests' (and optionally 'ignore')")
    unknown = set(document) - _SPEC_FIELDS
    if unknown:
        raise ParityFileError(f"{where}: unknown top-level fields {sorted(unknown)}; expected {sorted(_SPEC_FIELDS)}")
    raw_requests = document.get("requests")
    if not isinstance(raw_requests, list) or not raw_requests:
        raise ParityFileError(f"{where}: 'requests' must be a non-empty list")
    ignore = _parse_ignore(document.get("ignore"), f"{where}: ignore")
    requests, labels = [], {}
    for index, raw in enumerate(raw_requests):
        request = _parse_request(raw, f"{where}: requests[{index}]")
        if request.name in labels:
            raise ParityFileError(f"{where}: requests[{index}] repeats the name {request.name!r} "
                                  f"of requests[{labels[request.name]}]")
        labels[request.name] = index
        requests.append(request)
    return ParitySpec(source=source, requests=tuple(requests), ignore=ignore)


def _parse_request(raw: Any, where: str) -> ParityRequest:
    if not isinstance(raw, dict):
        raise ParityFileError(f"{where} must be a mapping with name, method and path, got {raw!r}")
    named = f"{where} ({raw['name']!r})" if isinstance(raw.get("name"), str) else where
    unknown = set(raw) - _REQUEST_FIELDS
    if unknown:
        raise ParityFileError(f"{named} has unknown fields {sorted(unknown)}; allowed {sorted(_REQUEST_FIELDS)}")
    for required in ("name", "method", "path"):
        if not isinstance(raw.get(required), str) or not raw[required].strip():
            raise ParityFileError(f"{named}.{required} is required and must be a non-empty string")
    method = raw["method"].upper()
    if method not in READ_ONLY_METHODS:
        raise ParityFileError(f"{named}.method {raw['method']!r}: parity requests must be read-only "
                              f"({', '.join(READ_ONLY_METHODS)}); each one is sent to both colors")
    if not raw["path"].startswith("/"):
        raise ParityFileError(f"{named}.path {raw['path']!r} must start with /")
    status = raw.get("expect_status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
        raise ParityFileError(f"{named}.expect_status must be an HTTP status code (100-599), got {status!r}")
    return ParityRequest(name=raw["name"], method=method, path=raw["path"], body=raw.get("body"),
                         expect_status=status, ignore=_parse_ignore(raw.get("ignore"), f"{named}.ignore"))


def _parse_ignore(raw: Any, where: str) -> tuple[IgnoredPath, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ParityFileError(f"{where} must be a list of {{path, reason}}")
    items = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - _IGNORE_FIELDS:
            raise ParityFileError(f"{where}[{index}] must be a mapping with path and reason, got {item!r}")
        if not isinstance(item.get("reason"), str) or not item["reason"].strip():
            raise ParityFileError(f"{where}[{index}] ({item.get('path')!r}) needs a reason: say why blue and "
                                  "green may legitimately differ there")
        try:
            parse_pattern(item.get("path"))
        except ValueError as error:
            raise ParityFileError(f"{where}[{index}].path {error}") from None
        items.append(IgnoredPath(item["path"], item["reason"].strip()))
    return tuple(items)


# ------------------------------------------------------------------------------------ judging answers


@dataclass(frozen=True)
class Answer:
    """What one color answered: HTTP status (None: no answer), body (parsed JSON or text), the
    transport error if any, and the X-Served-By header (which implementation served it)."""

    status: int | None
    body: Any = None
    error: str | None = None
    served_by: str | None = None


@dataclass(frozen=True)
class ParityResult:
    request: ParityRequest
    ok: bool
    lines: tuple[str, ...]  # one per difference, each "<METHOD> <path>: ..."
    differences: tuple[Difference, ...] = ()
    unreachable: bool = False
    more: int = 0  # differences beyond MAX_LINES_PER_REQUEST, not listed

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.request.name, "request": self.request.label, "ok": self.ok, "lines": list(self.lines),
                "unreachable": self.unreachable}


def compare(request: ParityRequest, blue: Answer, green: Answer, ignore: tuple[str, ...] = ()) -> ParityResult:
    """Judge one request's two answers. Statuses first; bodies only when the statuses agree
    (a 200 next to a 500 would otherwise list every field of the resource)."""
    prefix = f"{request.label}: "
    unreachable = [(color, answer) for color, answer in (("blue", blue), ("green", green)) if answer.status is None]
    if unreachable:
        lines = tuple(f"{prefix}{color} gave no answer: {answer.error or 'no response'}" for color, answer in unreachable)
        return ParityResult(request, False, lines, unreachable=True)
    lines: list[str] = []
    if green.served_by == "rails":
        # Green forwarded to blue despite X-Cutover-Serve: typescript: the comparison would be blue vs blue.
        lines.append(f"{prefix}green answered through rails (X-Served-By: rails), not its own code; "
                     "parity would compare blue with itself")
    if request.expect_status is not None:
        lines += [f"{prefix}{color} HTTP {answer.status}, expected {request.expect_status}"
                  for color, answer in (("blue", blue), ("green", green)) if answer.status != request.expect_status]
    more = 0
    if blue.status != green.status:
        differences = [Difference("HTTP status", blue.status, green.status, "status")]
        lines.append(f"{prefix}HTTP status: blue {blue.status} != green {green.status} "
                     f"(blue body {describe(blue.body)}, green body {describe(green.body)})")
    else:
        differences = diff_json(blue.body, green.body, ignore)
        lines += [prefix + difference.line() for difference in differences[:MAX_LINES_PER_REQUEST]]
        more = max(0, len(differences) - MAX_LINES_PER_REQUEST)
        if more:
            lines.append(f"{prefix}... and {more} more differences")
    return ParityResult(request, not lines, tuple(lines), tuple(differences), more=more)


def summary_line(results: list[ParityResult], blue_target: str, green_target: str) -> str:
    failed = [result for result in results if not result.ok]
    if not failed:
        return (f"Parity ok: {len(results)} requests answered alike by {blue_target} and {green_target} "
                "(ignoring the declared volatile paths)")
    return f"Parity FAILED: {len(failed)} of {len(results)} requests differ between {blue_target} and {green_target}"
