"""Which runbook section to read for a halt or a rollback line: one pure mapping, appended to the
end of the line (the line's leading text never changes: tests, docs and the rehearsal console
match on "Halt at 25 %: green 5xx ...").

A halt line names its causes in the judge's order; the first cause named in the text wins (a
line "green 5xx ...; green p95 ..." is an error-rate halt). The sections live in docs/runbooks/
and a unit test holds every anchor here to a heading there.
"""

from __future__ import annotations

import re

RUNBOOK_DIR = "docs/runbooks"
SEPARATOR = " — runbook: "

ROLLBACK = "rollback.md"
EMERGENCY = "emergency-rollback.md"
INCIDENT = "incident-response.md"

# (pattern in the line, runbook file, anchor). Checked together; the earliest match in the text
# wins, and an emergency stop outranks everything (the operator's reason is the halt's cause).
EMERGENCY_CAUSE = (re.compile(r"emergency rollback by"), EMERGENCY, "after-an-emergency-stop")
HALT_CAUSES = (
    (re.compile(r"\bis down\b"), ROLLBACK, "app-down"),
    (re.compile(r"the gate itself failed"), INCIDENT, "the-gate-itself-failed"),
    # The integrity probe's line (stage 11's first look or the gate's): a named row lost or corrupted.
    (re.compile(r"\bdata: \w+ id \d+"), ROLLBACK, "data-lost-or-corrupted-during-traffic"),
    (re.compile(r"Smoke at "), ROLLBACK, "smoke-check-failed"),
    # Alertmanager's critical alert for green (cutover_kit.observability.alert_gate).
    (re.compile(r"critical alert firing for"), ROLLBACK, "critical-alert-firing"),
    (re.compile(r"step timeout|Give up at|not enough|cutover state unreadable|no data|Prometheus"), ROLLBACK, "no-verdict"),
    (re.compile(r"\bblue (5xx|p\d+)|regressed vs"), ROLLBACK, "blue-regressed"),
    (re.compile(r"\bgreen 5xx"), ROLLBACK, "error-rate"),
    (re.compile(r"\bgreen p\d+"), ROLLBACK, "latency"),
    # The whole list's limits (cutover_kit.vitals): "green memory 412 MiB > 1.5 x blue 200 MiB".
    (re.compile(r"\bgreen (memory|CPU|throughput|job rate|WebSockets|DB statement time) [^;]*[<>] [\d.]+ x blue\b"
                r"|\bgreen failed jobs [^;]*\(> \+"), ROLLBACK, "whole-list-limit"),
    (re.compile(r"GX validation|expectations|Halt before any traffic moved"), ROLLBACK, "data-validation-failed"),
    (re.compile(r"task\(s\) failed|did not run|no healthy gate result|did not report"), ROLLBACK, "a-task-failed"),
)
#: What a line of the rollback group itself is about -> its section.
ROLLBACK_LEVELS = {
    "flags": (ROLLBACK, "level-1-flags-to-rails"),
    "traffic": (ROLLBACK, "level-2-traffic-to-blue"),
    "verify": (ROLLBACK, "verify-blue-serving-alone"),
    "not_verified": (INCIDENT, "rollback-not-verified"),
    "database": (ROLLBACK, "database-rollback"),
}
UNKNOWN_HALT = (INCIDENT, "a-halt-this-runbook-does-not-name")


def reference(runbook: str, anchor: str) -> str:
    return f"{RUNBOOK_DIR}/{runbook}#{anchor}"


def halt_runbook(line: str) -> str:
    """The runbook section for a halt line (gate, smoke, task failure, emergency stop)."""
    if EMERGENCY_CAUSE[0].search(line):
        return reference(*EMERGENCY_CAUSE[1:])
    found = [(match.start(), index) for index, (pattern, _, _) in enumerate(HALT_CAUSES)
             for match in [pattern.search(line)] if match]
    if not found:
        return reference(*UNKNOWN_HALT)
    _, runbook, anchor = HALT_CAUSES[min(found)[1]]
    return reference(runbook, anchor)


def level_runbook(level: str) -> str:
    """The section for one level of the rollback group (flags, traffic, verify, not_verified, database)."""
    if level not in ROLLBACK_LEVELS:
        raise KeyError(f"no runbook section for rollback level {level!r}; known: {', '.join(ROLLBACK_LEVELS)}")
    return reference(*ROLLBACK_LEVELS[level])


def with_runbook(line: str, section: str | None = None) -> str:
    """``line`` + " — runbook: <section>" (the halt's section when not given). Idempotent: a line
    that already names a runbook is returned as it is."""
    if SEPARATOR in line:
        return line
    return f"{line}{SEPARATOR}{section or halt_runbook(line)}"


def all_references() -> list[str]:
    """Every section this module can name (the docs test checks each heading exists)."""
    return sorted({reference(*EMERGENCY_CAUSE[1:]), reference(*UNKNOWN_HALT)}
                  | {reference(runbook, anchor) for _, runbook, anchor in HALT_CAUSES}
                  | {reference(*value) for value in ROLLBACK_LEVELS.values()})
