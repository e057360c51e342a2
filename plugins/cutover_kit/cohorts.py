"""Which color serves a user: cohorts first, then a sticky hash of the user id.

During a step at p % green:

- every member of a cohort named by this step or an earlier one is on green;
- every other user is on green exactly when ``bucket(user) < p``, where ``bucket(user)`` is the
  CRC-32 of the user id (UTF-8) modulo 100. A bucket never changes, so a user keeps one color for
  the whole step, and as p grows users only move blue -> green (bucket < 5 implies bucket < 25);
  on rollback (p = 0) everyone, cohort members included, is back on blue.

The same rule runs in HAProxy (include/haproxy/haproxy.cfg.tmpl): ``req.fhdr(X-User-Id),crc32,
mod(100)`` compared with green's share of the weights, and a map of cohort members. CRC-32 because
HAProxy's ``crc32`` converter and Python's ``zlib.crc32`` are the same function (checked against the
real HAProxy in tests/integration/test_cohort_routing.py), so the model here predicts the router's
choice exactly; and its buckets are even over numeric ids, e-mails and UUIDs (at 100,000 ids
every bucket holds within 8 % of 1,000). The routing applies only while HAProxy's switch is on
(see the template): off, every request follows the weights.

Pure: no I/O. Reading a cohort's source (SQL, file) lives elsewhere; the checks of what a source
and a member id may look like live here, so the plan model and the readers agree.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

#: Buckets of the sticky hash: one per percent of traffic (the router's weights also sum to 100).
BUCKETS = 100

#: The request header that carries the user's identity, for routing as for feature flags.
USER_ID_HEADER = "X-User-Id"

# A member id becomes a key of HAProxy's map (one word per line) and a header value: printable
# ASCII without spaces, short enough for a header.
_USER_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_COHORT_FILE = re.compile(r"^include/(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_SQL_START = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


class TrafficStepLike(Protocol):
    percent: int
    cohorts: tuple[str, ...]


def user_bucket(user_id: str) -> int:
    """The user's bucket in 0..99: CRC-32 of the UTF-8 id, modulo 100 (HAProxy: crc32,mod(100))."""
    if not isinstance(user_id, str) or not user_id:
        raise ValueError(f"user id must be a non-empty string; got {user_id!r}")
    return zlib.crc32(user_id.encode("utf-8")) % BUCKETS


def on_green_by_share(user_id: str, green_percent: int) -> bool:
    """Whether the sticky hash alone puts this user on green at `green_percent` %."""
    return user_bucket(user_id) < green_percent


def color_for_user(user_id: str, green_percent: int, green_cohort_members: Iterable[str] | frozenset[str] = frozenset()) -> str:
    """'green' or 'blue' for a user at a step: no green share = blue for all; then cohort members;
    then the sticky hash."""
    if not isinstance(green_percent, int) or isinstance(green_percent, bool) or not 0 <= green_percent <= 100:
        raise ValueError(f"green percent must be an integer in 0..100; got {green_percent!r}")
    if green_percent == 0:
        return "blue"
    members = green_cohort_members if isinstance(green_cohort_members, (set, frozenset)) else frozenset(green_cohort_members)
    if user_id in members or on_green_by_share(user_id, green_percent):
        return "green"
    return "blue"


def cohorts_on_green(steps: Sequence[TrafficStepLike], green_percent: int) -> tuple[str, ...]:
    """The cohorts on green at a step: those named by every step up to and including it, in order.
    None at 0 % (before the first step, or after a rollback)."""
    return tuple(cohort for step in steps if 0 < step.percent <= green_percent for cohort in step.cohorts)


def cohort_map_entries(members_by_cohort: Mapping[str, Iterable[str]], cohorts: Sequence[str]) -> dict[str, str]:
    """User id -> cohort for HAProxy's map: every member of `cohorts`; a user in several is listed
    under the first of them (the one that put them on green). A cohort without members is an error."""
    entries: dict[str, str] = {}
    for cohort in cohorts:
        if cohort not in members_by_cohort:
            raise ValueError(f"cohort {cohort!r}: no members were read (known: {', '.join(sorted(members_by_cohort)) or 'none'})")
        members = list(members_by_cohort[cohort])
        if not members:
            raise ValueError(f"cohort {cohort!r} has no members")
        for user_id in members:
            entries.setdefault(user_id, cohort)
    return entries


def user_id_problem(user_id: Any) -> str | None:
    """Why `user_id` cannot be a cohort member (None if it can)."""
    if not isinstance(user_id, str):
        return f"{user_id!r} is not a string"
    if not _USER_ID.match(user_id):
        return f"{user_id!r} is not 1-128 printable ASCII characters without spaces"
    return None


def parse_member_lines(text: str, cohort: str) -> tuple[str, ...]:
    """Member ids of a cohort file: one per line, blank lines and # comments ignored, order kept,
    duplicates dropped. ValueError naming the cohort and line for a bad id or an empty cohort."""
    members: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        user_id = line.split("#", 1)[0].strip()
        if not user_id:
            continue
        problem = user_id_problem(user_id)
        if problem:
            raise ValueError(f"cohort {cohort!r} line {number}: {problem}")
        members[user_id] = None
    if not members:
        raise ValueError(f"cohort {cohort!r} has no members")
    return tuple(members)


def source_problems(name: str, source: Mapping[str, Any], field: str) -> list[str]:
    """What is wrong with a cohort source as written in a plan (exactly one of sql / file)."""
    kinds = sorted(key for key in ("sql", "file") if key in source)
    if len(kinds) != 1:
        return [f"{field}: give exactly one source, sql (a query on the application database) or file "
                f"(include/...); got {', '.join(kinds) or 'none'}"]
    if kinds == ["file"]:
        path = source["file"]
        if not _COHORT_FILE.match(path) or ".." in path.split("/"):
            return [f"{field}.file: must be a relative path under include/ (e.g. include/cohorts/{name}.txt); got {path!r}"]
        return []
    query = source["sql"].strip().rstrip(";").strip()
    if not _SQL_START.match(query) or ";" in query:
        return [f"{field}.sql: must be one SELECT (or WITH ... SELECT) statement returning the user ids; got {source['sql']!r}"]
    return []
