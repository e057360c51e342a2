"""Response parity between blue and green: a fixed request set (include/smoke/parity.yaml), and a
pure diff of two answers that reads as one line per differing field, with its JSON path:

    GET /api/orders/42: $.status: blue "paid" != green "PAID"

No Airflow and no network here: the smoke DAG's task (stages/smoke.py) sends the requests and
hands the answers to :func:`compare`.

Paths follow a small JSONPath subset: ``$`` is the body, ``.name`` a member (``["odd key"]`` when the
name is not an identifier), ``[3]`` an array element. Ignore patterns may use ``[*]`` (any element)
and ``.*`` (any member), e.g. ``$.orders[*].amount``. An ignored path is skipped whether it differs
in value, in type, or is present on one side only, and so is everything below it.

Blue (Rails) and green (TypeScript) are two implementations, so some answers are equivalent without
being equal. The parity file declares those equivalences per field (``normalise``), each with a
reason; everything not declared must be equal:

- ``key_case`` (path, case: snake|camel): member names at and below the path are compared in that
  case (``userId`` and ``user_id`` are one member); reported paths use the converted names.
- ``timestamp`` (path, precision: s|ms|us): both values are read as instants (ISO 8601 with ``T``
  or a space, optional fraction, ``Z``/offset; no offset means UTC) and compared truncated to the
  precision: ``2024-01-07T03:10:04.800Z`` equals ``2024-01-07 03:10:04.800000`` at ms.
- ``decimal_cents`` (cents, decimal, scale): two sibling members hold one amount, integer cents and
  a decimal (``1250`` and ``"12.50"`` at scale 2). A side without the decimal member gets it from its
  cents for the comparison, and a side that has only the decimal needs no cents member; the amount
  is compared once, at the decimal path: ``$.amount: blue 1250 cents ($.amount_cents) != green "12.51"``.
- ``absent_means`` (path, value): a member missing on one side counts as the declared value
  (blue knows only USD and says nothing; green says ``"currency": "USD"``).

A normaliser that does not fit the value found (a timestamp that is not one, cents that are not an
integer, two keys that become one) is a difference of its own, naming the declaration's file, entry
and line: the answers were not shown equivalent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from cutover_kit.yaml_loader import YAMLFileError, line_of, load_yaml

from cutover_kit.paths import REPO_ROOT

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


# ------------------------------------------------------------------------------------ normalisations


KEY_CASES = ("snake", "camel")
# Truncation unit of each timestamp precision, in microseconds.
TIMESTAMP_PRECISIONS = {"s": 1_000_000, "ms": 1_000, "us": 1}
MAX_DECIMAL_SCALE = 6
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
_SNAKE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


@dataclass(frozen=True)
class Normalisation:
    """One declared equivalence (see the module doc). ``where`` names the file, entry and line, for
    the line reporting that it does not fit a value found."""

    kind: str
    reason: str
    where: str
    path: str = "$"  # key_case, timestamp, absent_means: where it applies
    case: str = ""  # key_case
    precision: str = ""  # timestamp
    cents: str = ""  # decimal_cents: the integer member ...
    decimal: str = ""  # ... and its decimal sibling
    scale: int = 2  # decimal_cents: digits after the point
    value: Any = None  # absent_means


class _Derived:
    """A value one side did not send but that a normalisation stands in for; ``note`` says how,
    for the difference line."""

    def __init__(self, value: Any, note: str) -> None:
        self.value, self.note = value, note


def _to_snake(name: str) -> str:
    return _SNAKE_BOUNDARY.sub("_", name).lower()


def _to_camel(name: str) -> str:
    head, *rest = _to_snake(name).split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_CASE_CONVERTERS = {"snake": _to_snake, "camel": _to_camel}


def parse_timestamp(value: Any) -> datetime | None:
    """An aware instant, or None when ``value`` is not a timestamp (dates alone are not)."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return None
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # e.g. month 13
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


def _truncated(instant: datetime, precision: str) -> datetime:
    unit = TIMESTAMP_PRECISIONS[precision]
    return instant.astimezone(timezone.utc).replace(microsecond=instant.microsecond // unit * unit)


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, _Derived):
        return value.value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return Decimal(value)
    return None


@dataclass(frozen=True)
class _Rules:
    """Ignore patterns and normalisations, their paths parsed once."""

    ignore: tuple[tuple[str, ...], ...] = ()
    key_case: tuple[tuple[tuple[str, ...], Normalisation], ...] = ()
    leaf: tuple[tuple[tuple[str, ...], Normalisation], ...] = ()  # timestamp, and decimal_cents' decimal
    members: tuple[tuple[tuple[str, ...], Normalisation], ...] = ()  # by parent: absent_means, decimal_cents

    @classmethod
    def build(cls, ignore: tuple[str, ...] | list[str], normalise: tuple[Normalisation, ...] | list[Normalisation]) -> "_Rules":
        key_case, leaf, members = [], [], []
        for rule in normalise:
            if rule.kind == "key_case":
                key_case.append((parse_pattern(rule.path), rule))
            elif rule.kind == "timestamp":
                leaf.append((parse_pattern(rule.path), rule))
            elif rule.kind == "decimal_cents":
                decimal = parse_pattern(rule.decimal)
                leaf.append((decimal, rule))
                members.append((decimal[:-1], rule))
            elif rule.kind == "absent_means":
                members.append((parse_pattern(rule.path)[:-1], rule))
            else:
                raise ValueError(f"{rule.where}: unknown normalisation kind {rule.kind!r}")
        return cls(tuple(parse_pattern(pattern) for pattern in ignore), tuple(key_case), tuple(leaf), tuple(members))

    def ignored(self, tokens: tuple[str, ...]) -> bool:
        return any(_matches(pattern, tokens) for pattern in self.ignore)

    def leaf_rule(self, tokens: tuple[str, ...]) -> Normalisation | None:
        return next((rule for pattern, rule in self.leaf if len(pattern) == len(tokens) and _matches(pattern, tokens)), None)

    def case_of(self, tokens: tuple[str, ...]) -> Normalisation | None:
        return next((rule for pattern, rule in self.key_case if _matches(pattern, tokens)), None)

    def member_rules(self, tokens: tuple[str, ...]) -> list[Normalisation]:
        return [rule for parent, rule in self.members if len(parent) == len(tokens) and _matches(parent, tokens)]


def _member_name(pattern: str) -> str:
    return parse_pattern(pattern)[-1][1:]


# ------------------------------------------------------------------------------------ diff


@dataclass(frozen=True)
class Difference:
    """One field that differs. ``blue``/``green`` are the values (ABSENT: missing on that side)."""

    path: str
    blue: Any
    green: Any
    kind: str  # "value", "type", "missing", "length", "status", "unreachable", "normalisation"
    note: str = ""  # kind "normalisation": why the declared normalisation does not fit

    def line(self) -> str:
        if self.kind == "normalisation":
            return self.note
        if self.kind == "length":
            return f"{self.path}: blue {self.blue} items != green {self.green} items"
        if self.kind == "type":
            return (f"{self.path}: blue {describe(self.blue)} ({json_type(self.blue)}) != "
                    f"green {describe(self.green)} ({json_type(self.green)})")
        return f"{self.path}: blue {describe(self.blue)} != green {describe(self.green)}"


def json_type(value: Any) -> str:
    if isinstance(value, _Derived):
        return json_type(value.value)
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass, but true is not 1 in JSON
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
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
    if isinstance(value, _Derived):
        return value.note
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def diff_json(blue: Any, green: Any, ignore: tuple[str, ...] | list[str] = (), path: str = "$",
              normalise: tuple[Normalisation, ...] | list[Normalisation] = ()) -> list[Difference]:
    """Every difference between two JSON values, depth first, members in sorted order.

    Numbers compare by value (1 == 1.0) but never equal a boolean; arrays compare element by
    element, and a length difference is its own line (then the common prefix is compared).
    ``ignore`` holds JSON path patterns, ``normalise`` the declared equivalences (see the module doc).
    """
    differences: list[Difference] = []
    _diff(blue, green, path, tuple(_tokens_of(path)), _Rules.build(ignore, normalise), differences)
    return differences


def _tokens_of(path: str) -> tuple[str, ...]:
    return parse_pattern(path) if path != "$" else ()


def _not_fitting(rule: Normalisation, path: str, blue: Any, green: Any, problem: str) -> Difference:
    return Difference(path, blue, green, "normalisation",
                      f"{path}: {rule.kind} normalisation ({rule.where}) does not apply: {problem}")


def _diff(blue: Any, green: Any, path: str, tokens: tuple[str, ...], rules: _Rules, out: list[Difference]) -> None:
    if rules.ignored(tokens):
        return
    if blue is ABSENT or green is ABSENT:
        out.append(Difference(path, blue, green, "missing"))
        return
    rule = rules.leaf_rule(tokens)
    if rule is not None and blue is not None and green is not None and not _equal_plain(blue, green):
        _diff_normalised(rule, blue, green, path, out)
        return
    blue_value = blue.value if isinstance(blue, _Derived) else blue
    green_value = green.value if isinstance(green, _Derived) else green
    blue_type, green_type = json_type(blue), json_type(green)
    if blue_type != green_type:
        out.append(Difference(path, blue, green, "type"))
        return
    if blue_type == "object":
        _diff_objects(blue, green, path, tokens, rules, out)
        return
    if blue_type == "array":
        if len(blue) != len(green):
            out.append(Difference(path, len(blue), len(green), "length"))
        for index, (left, right) in enumerate(zip(blue, green)):
            _diff(left, right, f"{path}[{index}]", (*tokens, f"[{index}]"), rules, out)
        return
    if blue_value != green_value:
        out.append(Difference(path, blue, green, "value"))


def _equal_plain(blue: Any, green: Any) -> bool:
    return (not isinstance(blue, _Derived) and not isinstance(green, _Derived)
            and json_type(blue) == json_type(green) and blue == green)


def _diff_normalised(rule: Normalisation, blue: Any, green: Any, path: str, out: list[Difference]) -> None:
    if rule.kind == "timestamp":
        read, expected = parse_timestamp, "a timestamp (ISO 8601, e.g. 2024-01-07T03:10:04.800Z or 2024-01-07 03:10:04.800000)"
    else:  # decimal_cents, at its decimal member
        read, expected = _as_decimal, 'a decimal amount (a number or a string like "12.50")'
    readings = []
    for color, value in (("blue", blue), ("green", green)):
        reading = read(value)
        if reading is None:
            out.append(_not_fitting(rule, path, blue, green, f"{color} {describe(value)} is not {expected}"))
            return
        readings.append(_truncated(reading, rule.precision) if rule.kind == "timestamp" else reading)
    if readings[0] != readings[1]:
        out.append(Difference(path, blue, green, "value"))


def _diff_objects(blue: dict, green: dict, path: str, tokens: tuple[str, ...], rules: _Rules,
                  out: list[Difference]) -> None:
    case = rules.case_of(tokens)
    if case is not None:
        converted = []
        for color, members in (("blue", blue), ("green", green)):
            renamed = _renamed(members, _CASE_CONVERTERS[case.case])
            if isinstance(renamed, str):
                out.append(_not_fitting(case, path, blue, green, f"{color} members {renamed} are one in {case.case}_case"))
                return
            converted.append(renamed)
        blue, green = converted
    blue, green = dict(blue), dict(green)
    not_compared: set[str] = set()
    for rule in rules.member_rules(tokens):
        if rule.kind == "absent_means":
            name = _member_name(rule.path)
            for members, other in ((blue, green), (green, blue)):
                if name not in members and name in other:
                    members[name] = _Derived(rule.value, f"(absent, read as {describe(rule.value)})")
        else:
            cents, decimal = _member_name(rule.cents), _member_name(rule.decimal)
            for color, members, other in (("blue", blue, green), ("green", green, blue)):
                if decimal in members:
                    if cents not in members:
                        not_compared.add(cents)  # the amount is compared at the decimal member
                elif decimal in other and cents in members:
                    amount = members[cents]
                    if isinstance(amount, bool) or not isinstance(amount, int):
                        out.append(_not_fitting(rule, member_path(path, cents), blue.get(cents, ABSENT),
                                                green.get(cents, ABSENT), f"{color} {describe(amount)} is not integer cents"))
                        not_compared.add(decimal)
                        continue
                    members[decimal] = _Derived(Decimal(amount).scaleb(-rule.scale),
                                                f"{amount} cents ({member_path(path, cents)})")
    for name in sorted(set(blue) | set(green), key=str):
        if name in not_compared and (name not in blue or name not in green):
            continue
        _diff(blue.get(name, ABSENT), green.get(name, ABSENT), member_path(path, str(name)),
              (*tokens, f".{name}"), rules, out)


def _renamed(members: dict, convert) -> dict | str:
    """The members under converted names, or the names that collide (as a phrase) if two become one."""
    renamed: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, value in members.items():
        new = convert(str(name))
        if new in renamed:
            return f"{json.dumps(origin[new])} and {json.dumps(str(name))}"
        renamed[new], origin[new] = value, str(name)
    return renamed


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
    # Every normalisation this request's answers are compared under: the file's shared ones, then its own.
    normalise: tuple[Normalisation, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class ParitySpec:
    source: str
    requests: tuple[ParityRequest, ...]
    ignore: tuple[IgnoredPath, ...] = ()
    normalise: tuple[Normalisation, ...] = ()  # the shared ones (each request also carries its own)

    def ignore_for(self, request: ParityRequest) -> tuple[str, ...]:
        return tuple(item.path for item in (*self.ignore, *request.ignore))


_SPEC_FIELDS = {"ignore", "normalise", "requests"}
_REQUEST_FIELDS = {"name", "method", "path", "body", "expect_status", "ignore", "normalise"}
_IGNORE_FIELDS = {"path", "reason"}


def load_parity(path: Path | str = DEFAULT_PARITY_FILE) -> ParitySpec:
    """Read and validate the parity file; ParityFileError names the file and the entry at fault."""
    path = Path(path)
    try:
        document = load_yaml(path, lines=True)
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
    normalise = _parse_normalise(document.get("normalise"), f"{where}: normalise")
    requests, labels = [], {}
    for index, raw in enumerate(raw_requests):
        request = _parse_request(raw, f"{where}: requests[{index}]", normalise)
        if request.name in labels:
            raise ParityFileError(f"{where}: requests[{index}] repeats the name {request.name!r} "
                                  f"of requests[{labels[request.name]}]")
        labels[request.name] = index
        requests.append(request)
    return ParitySpec(source=source, requests=tuple(requests), ignore=ignore, normalise=normalise)


def _parse_request(raw: Any, where: str, shared: tuple[Normalisation, ...] = ()) -> ParityRequest:
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
                         expect_status=status, ignore=_parse_ignore(raw.get("ignore"), f"{named}.ignore"),
                         normalise=_parse_normalise_for(raw.get("normalise"), f"{named}.normalise", shared))


def _parse_normalise_for(raw: Any, where: str, shared: tuple[Normalisation, ...]) -> tuple[Normalisation, ...]:
    """The shared normalisations and the request's own; one field is not normalised twice alike."""
    rules = (*shared, *_parse_normalise(raw, where))
    _refuse_repeats(rules)
    return rules


_NORMALISATION_FIELDS = {  # kind -> (required fields, optional fields); every entry also has kind and reason
    "key_case": ({"path", "case"}, set()),
    "timestamp": ({"path", "precision"}, set()),
    "decimal_cents": ({"cents", "decimal"}, {"scale"}),
    "absent_means": ({"path", "value"}, set()),
}


def _parse_normalise(raw: Any, where: str) -> tuple[Normalisation, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ParityFileError(f"{where} must be a list of {{kind, ..., reason}}")
    rules: list[Normalisation] = []
    for index, item in enumerate(raw):
        rules.append(_parse_normalisation(item, f"{where}[{index}]", line_of(item)))
    _refuse_repeats(rules)
    return tuple(rules)


def _refuse_repeats(rules: tuple[Normalisation, ...] | list[Normalisation]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for rule in rules:
        key = (rule.kind, rule.path)  # a decimal_cents rule's path is its decimal member
        if key in seen:
            raise ParityFileError(f"{rule.where} declares {rule.kind} at {rule.path} again (first at {seen[key]})")
        seen[key] = rule.where


def _parse_normalisation(item: Any, entry: str, line: int | None) -> Normalisation:
    """One `normalise` entry; `entry` names it ("parity file F: normalise[2]"), `line` is where it starts."""
    at_line = f", line {line}" if line else ""
    if not isinstance(item, dict):
        raise ParityFileError(f"{entry} must be a mapping with kind, its fields and reason, got {item!r}")
    kind = item.get("kind")
    if kind not in _NORMALISATION_FIELDS:
        raise ParityFileError(f"{entry}{f' (line {line})' if line else ''}: unknown normalisation kind {kind!r}; "
                              f"known kinds: {', '.join(_NORMALISATION_FIELDS)}")
    entry = f"{entry} ({kind}{at_line})"
    required, optional = _NORMALISATION_FIELDS[kind]
    unknown = set(item) - required - optional - {"kind", "reason"}
    if unknown:
        raise ParityFileError(f"{entry} has unknown fields {sorted(unknown)}; "
                              f"{kind} takes {sorted(required | optional)} and reason")
    missing = sorted(required - set(item))
    if missing:
        raise ParityFileError(f"{entry} needs {', '.join(missing)}")
    if not isinstance(item.get("reason"), str) or not item["reason"].strip():
        raise ParityFileError(f"{entry} needs a reason: say why the two answers are equivalent there")
    for name in ("path", "cents", "decimal"):
        if name in item:
            try:
                tokens = parse_pattern(item[name])
            except ValueError as error:
                raise ParityFileError(f"{entry}.{name} {error}") from None
            if name != "path" or kind == "absent_means":
                if not tokens or tokens[-1] == ".*" or not tokens[-1].startswith("."):
                    raise ParityFileError(f"{entry}.{name} {item[name]!r} must end on a member name "
                                          "(e.g. $.orders[*].amount), not on $, [i], [*] or .*")
    fields: dict[str, Any] = {"kind": kind, "reason": item["reason"].strip(), "where": entry}
    if kind == "key_case":
        if item["case"] not in KEY_CASES:
            raise ParityFileError(f"{entry}.case must be one of {', '.join(KEY_CASES)}, got {item['case']!r}")
        fields.update(path=item["path"], case=item["case"])
    elif kind == "timestamp":
        if item["precision"] not in TIMESTAMP_PRECISIONS:
            raise ParityFileError(f"{entry}.precision must be one of {', '.join(TIMESTAMP_PRECISIONS)}, "
                                  f"got {item['precision']!r}")
        fields.update(path=item["path"], precision=item["precision"])
    elif kind == "decimal_cents":
        scale = item.get("scale", 2)
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= MAX_DECIMAL_SCALE:
            raise ParityFileError(f"{entry}.scale must be an integer from 0 to {MAX_DECIMAL_SCALE}, got {scale!r}")
        cents, decimal = parse_pattern(item["cents"]), parse_pattern(item["decimal"])
        if cents[:-1] != decimal[:-1] or cents == decimal:
            raise ParityFileError(f"{entry}: cents {item['cents']!r} and decimal {item['decimal']!r} must be two "
                                  "members of the same object (e.g. $.amount_cents and $.amount)")
        fields.update(cents=item["cents"], decimal=item["decimal"], scale=scale, path=item["decimal"])
    else:  # absent_means
        if isinstance(item["value"], (dict, list)):
            raise ParityFileError(f"{entry}.value must be a string, number, boolean or null, got {item['value']!r}")
        fields.update(path=item["path"], value=item["value"])
    return Normalisation(**fields)


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
        differences = diff_json(blue.body, green.body, ignore, normalise=request.normalise)
        lines += [prefix + difference.line() for difference in differences[:MAX_LINES_PER_REQUEST]]
        more = max(0, len(differences) - MAX_LINES_PER_REQUEST)
        if more:
            lines.append(f"{prefix}... and {more} more differences")
    return ParityResult(request, not lines, tuple(lines), tuple(differences), more=more)


def summary_line(results: list[ParityResult], blue_target: str, green_target: str) -> str:
    failed = [result for result in results if not result.ok]
    if not failed:
        return (f"Parity ok: {len(results)} requests answered alike by {blue_target} and {green_target} "
                "(up to the declared ignored paths and normalisations)")
    return f"Parity FAILED: {len(failed)} of {len(results)} requests differ between {blue_target} and {green_target}"
