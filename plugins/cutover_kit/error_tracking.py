"""Error tracking as a gate input: exception types green raised during a step that blue never
raised since the run began. Pure (no Airflow, no I/O): the hook
(cutover_kit.hooks.error_tracking) counts events; this module decides and words it.

What "new" means, and why
- Green's side is the step's judging window: what the new code raised while this step's share of
  users was on it.
- Blue's side is every exception type blue raised since the run began, not only in the same
  window. Blue's share shrinks step by step (at 100 % it serves nobody), so a same-window
  comparison would call every green exception "new" late in the run just because blue had no
  traffic to fail on; and a type blue raised an hour ago is a known failure of the service, not a
  regression of the rewrite.
- Types are compared by their unqualified name (``Cutover::InjectedFaultError`` and
  ``InjectedFaultError`` are the same failure): the two apps are written in two languages and
  name their own exceptions alike. A real rewrite whose types differ by language
  (``ActiveRecord::RecordNotFound`` vs ``NotFoundError``) lists the pairs in ``ignore``.
- A type counts as new once green raised it at least ``min_events`` times in the window (one
  stray event is noise, not a regression); below that it is named as "seen" in the facts.

The plan decides what a new type does (`error_tracking`, all optional):
  fail_on_new_exception_types  false (default): reported in the gate's line and event only;
                               true: the poll FAILs (then the usual consecutive-breach rule)
  min_events                   3: events of one type in the window before it counts
  ignore                       []: type names (unqualified) never reported

An unreadable tracker never passes a gate that must fail on new types: such a poll is
INCONCLUSIVE; with report-only it is named in the line and judged as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The plan section's schema lives with the plan's (cutover_kit.plan.schema.ERROR_TRACKING_SCHEMA).
from cutover_kit.plan.schema import DEFAULT_ERROR_TRACKING_MIN_EVENTS as DEFAULT_MIN_EVENTS
from cutover_kit.plan.schema import EXCEPTION_TYPE_NAME_PATTERN as TYPE_NAME_PATTERN
from cutover_kit.slo import Judgement, Verdict


class ErrorTrackingError(RuntimeError):
    """The tracker could not be read (down, refused, an answer of the wrong shape)."""


def type_name(raw: str) -> str:
    """The unqualified exception type: ``Cutover::InjectedFaultError`` -> ``InjectedFaultError``,
    ``psycopg2.errors.UniqueViolation`` -> ``UniqueViolation``."""
    return re.split(r"::|\.", raw.strip())[-1] or raw


def by_type_name(counts: Mapping[str, int]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for raw, count in counts.items():
        merged[type_name(raw)] = merged.get(type_name(raw), 0) + int(count)
    return merged


@dataclass(frozen=True)
class ErrorTrackingPolicy:
    fail_on_new_exception_types: bool = False
    min_events: int = DEFAULT_MIN_EVENTS
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.min_events, int) or isinstance(self.min_events, bool) or self.min_events < 1:
            raise ValueError(f"error_tracking.min_events must be an integer >= 1; got {self.min_events!r}")
        bad = [name for name in self.ignore if not re.match(TYPE_NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"error_tracking.ignore: {', '.join(map(repr, bad))} are not unqualified type names "
                             f"(e.g. RecordNotFound, not ActiveRecord::RecordNotFound)")

    @classmethod
    def from_plan(cls, section: Mapping[str, Any] | None) -> ErrorTrackingPolicy:
        """The plan's `error_tracking` section (None or {}: the defaults, report only)."""
        section = section or {}
        return cls(fail_on_new_exception_types=bool(section.get("fail_on_new_exception_types", False)),
                   min_events=section.get("min_events", DEFAULT_MIN_EVENTS),
                   ignore=tuple(section.get("ignore") or ()))


@dataclass(frozen=True)
class ErrorTrackingJudgement:
    """New types (name -> green's events in the window), what only came below min_events, and the line."""

    new_types: dict[str, int]
    below_min_events: dict[str, int]
    green_types: dict[str, int]
    blue_types: tuple[str, ...]
    fails: bool
    reason: str
    policy: ErrorTrackingPolicy = field(default_factory=ErrorTrackingPolicy)

    def to_dict(self) -> dict[str, Any]:
        return {"new_types": dict(self.new_types), "below_min_events": dict(self.below_min_events),
                "green_types": dict(self.green_types), "blue_types": list(self.blue_types), "fails": self.fails,
                "reason": self.reason, "fail_on_new_exception_types": self.policy.fail_on_new_exception_types,
                "min_events": self.policy.min_events}


def _named(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} x{count}" for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def judge_new_exception_types(green_in_window: Mapping[str, int], blue_since_run_start: Mapping[str, int],
                              policy: ErrorTrackingPolicy) -> ErrorTrackingJudgement:
    """Which exception types green raised in the window that blue never raised since the run began."""
    green = {name: count for name, count in by_type_name(green_in_window).items()
             if count > 0 and name not in policy.ignore}
    blue = {name for name, count in by_type_name(blue_since_run_start).items() if count > 0}
    unknown = {name: count for name, count in green.items() if name not in blue}
    new = {name: count for name, count in unknown.items() if count >= policy.min_events}
    below = {name: count for name, count in unknown.items() if count < policy.min_events}
    fails = bool(new) and policy.fail_on_new_exception_types
    if new:
        consequence = "FAIL (plan: fail_on_new_exception_types)" if fails else "reported only (plan: fail_on_new_exception_types false)"
        reason = f"new exception types on green that blue has not raised this run: {_named(new)}; {consequence}"
    elif green:
        reason = f"no new exception type on green (green raised {_named(green)}, known from blue"
        reason += f"; below min_events {policy.min_events}: {_named(below)})" if below else ")"
    else:
        reason = "no exception reported by green in the window"
    return ErrorTrackingJudgement(new_types=new, below_min_events=below, green_types=green, blue_types=tuple(sorted(blue)),
                                  fails=fails, reason=reason, policy=policy)


def with_error_tracking(judgement: Judgement, tracking: ErrorTrackingJudgement | None, error: str | None,
                        policy: ErrorTrackingPolicy) -> Judgement:
    """The poll's judgement with error tracking folded in: a failing new type turns any verdict
    into FAIL; an unreadable tracker turns a PASS into INCONCLUSIVE only when the plan would fail
    on new types (an unknown never passes such a gate); otherwise the line just says what it saw."""
    if error is not None:
        reason = f"{judgement.reason}; error tracking unreadable: {error}"
        if policy.fail_on_new_exception_types and judgement.verdict is Verdict.PASS:
            return Judgement(Verdict.INCONCLUSIVE, reason, judgement.breaches, (*judgement.doubts, f"error tracking: {error}"))
        return Judgement(judgement.verdict, reason, judgement.breaches, judgement.doubts)
    if tracking is None:
        return judgement
    reason = f"{judgement.reason}; {tracking.reason}"
    if tracking.fails:
        return Judgement(Verdict.FAIL, reason, (*judgement.breaches, f"new exception types: {_named(tracking.new_types)}"),
                         judgement.doubts)
    return Judgement(judgement.verdict, reason, judgement.breaches, judgement.doubts)


def judge_error_reporting(expected_releases: Mapping[str, str | None], received: Mapping[str, Mapping[str, int]],
                          check_id: str) -> tuple[bool, str]:
    """Stage 4's check: did the tracker get the test exception of every color, under the release
    that color says it reports with? ``expected_releases``: color -> release the app answered;
    ``received``: color -> {release: events tagged with this check id}. (ok, one line)."""
    parts, ok = [], True
    for color in sorted(expected_releases):
        release, releases = expected_releases[color], dict(received.get(color) or {})
        if not release:
            ok = False
            parts.append(f"{color} reports without a release (SENTRY_RELEASE unset), so a regression cannot be tied to a build")
        elif releases.get(release, 0) >= 1:
            parts.append(f"{color} event received with release {release}")
        elif releases:
            ok = False
            parts.append(f"{color} event received but with release {', '.join(sorted(releases))}, not {release}")
        else:
            ok = False
            parts.append(f"{color}: no event received")
    verdict = "error reporting reaches the tracker" if ok else "error reporting is NOT proven"
    return ok, f"{verdict} (check {check_id}): " + "; ".join(parts)
