"""What the cutover tells the war room, one line per event: every stage transition, gate decision,
rollback, emergency stop, the run's verdict and a missed deadline. Pure: no Airflow, no network.
The notifiers (cutover_kit.notifiers.cutover) gather the facts from a callback's context, build a
:class:`CutoverNotice` here and POST :func:`notice_payload` to the ``cutover_notifications`` webhook.

Every notice carries the DAG, run id, step and try number, in its text and in a machine-readable
``cutover`` block, so a retried task's second notice is recognisable (same ``key`` but the try) and
a receiver can drop exact repeats by ``key``. The payload stays Slack-compatible: Slack and its
clones read ``text`` and ``blocks`` and ignore the extra top-level ``cutover`` object.

Which task of a stage announces it (pure, so the race between parallel tasks is tested here):
- start: the stage's first tasks (no upstream inside the group); the first of them to start
  announces and leaves a marker in its XCom, which the others find (:func:`announces_stage_start`);
- end: its last tasks; the one that finds all of them done announces (:func:`stage_end_summary`).
  Each task reports its own state before its callbacks run, so the last one to finish always sees
  the others done: at least one notice, two only when two last tasks finish in the same instant.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cutover_kit.notify import SECTION_LIMIT, clip

#: The public vocabulary of notice kinds (rehearsal-result.json's `notifications[].kind`).
STAGE_STARTED = "stage_started"
STAGE_FINISHED = "stage_finished"
STAGE_FAILED = "stage_failed"
GATE_DECISION = "gate_decision"
ROLLBACK = "rollback"
EMERGENCY_STOP = "emergency_stop"
VERDICT = "verdict"
DEADLINE_MISSED = "deadline_missed"
KINDS = (STAGE_STARTED, STAGE_FINISHED, STAGE_FAILED, GATE_DECISION, ROLLBACK, EMERGENCY_STOP, VERDICT,
         DEADLINE_MISSED)

#: XCom key of the marker a stage's first task leaves when it announced the stage's start.
STAGE_START_XCOM_KEY = "stage_start_announced"
#: Task states after which a task will not run again in this run.
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: A notice's one line is cut here: a chat line, not a log (the task log keeps the whole story).
LINE_LIMIT = 600


@dataclass(frozen=True)
class CutoverNotice:
    kind: str
    text: str
    dag_id: str | None
    run_id: str | None
    step: str | None = None  # the stage group, the step label ("25 %") or the rollback's step
    task_id: str | None = None
    try_number: int | None = None
    at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"notice kind {self.kind!r} is not one of {', '.join(KINDS)}")

    @property
    def key(self) -> str:
        """Identifies the event: equal for a repeat of the same notice, different for another try."""
        return "/".join(str(part) for part in (self.dag_id, self.run_id, self.kind, self.step, self.task_id,
                                                f"try{self.try_number}" if self.try_number else None) if part)

    @property
    def line(self) -> str:
        """The text plus where it comes from, e.g. '... [cutover run manual__x, stage_05.postgres try 1]'."""
        origin = [self.dag_id or "?", f"run {self.run_id}" if self.run_id else None,
                  f"{self.task_id} try {self.try_number}" if self.task_id and self.try_number else self.task_id]
        return f"{self.text} [{', '.join(part for part in origin if part)}]"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "dag_id": self.dag_id, "run_id": self.run_id, "step": self.step,
                "task_id": self.task_id, "try_number": self.try_number, "at": round(self.at, 3), "key": self.key,
                "text": self.text}


def one_line(text: Any, limit: int = LINE_LIMIT) -> str:
    """Whitespace (newlines included) collapsed to single spaces, cut at `limit` with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def notice_payload(notice: CutoverNotice) -> dict[str, Any]:
    """The Slack-compatible body: ``text`` is the whole one-line message, one mrkdwn section repeats
    it, and ``cutover`` holds the same facts for machines (the sandbox's rehearsal result reads it)."""
    text = clip(notice.line, SECTION_LIMIT)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            "cutover": notice.to_dict()}


# ------------------------------------------------------------------------------------ stages


def announces_stage_start(task_id: str, roots: Iterable[str], announced_by: Iterable[str]) -> bool:
    """Whether `task_id`, a first task of its stage now starting, announces the stage: unless another
    first task already did (its STAGE_START_XCOM_KEY marker). Parallel first tasks start one after
    another in a few milliseconds, so only a true tie posts twice (both with the same stage, different
    task ids); a retry of the announcing task announces again (its marker went with its first try)."""
    roots = list(roots)
    return task_id in roots and not (set(announced_by) & (set(roots) - {task_id}))


def stage_end_summary(leaves: Iterable[str], group_states: Mapping[str, str | None]) -> str | None:
    """'4 tasks succeeded' (or '3 succeeded, 1 skipped') when every last task of the stage has
    finished; None while one has not (its own callback will announce the end)."""
    leaves = list(leaves)
    if not leaves or any(group_states.get(leaf) not in FINISHED_STATES for leaf in leaves):
        return None
    counts = Counter(state for state in group_states.values() if state)
    if set(counts) == {"success"}:
        return f"{counts['success']} task{'s' if counts['success'] != 1 else ''} succeeded"
    order = ["success", "skipped", "failed", "upstream_failed", "removed"]
    parts = [f"{counts[state]} {'succeeded' if state == 'success' else state.replace('_', ' ')}"
             for state in order if counts.get(state)]
    parts += [f"{count} {state}" for state, count in sorted(counts.items()) if state not in order]
    return ", ".join(parts)


def stage_started_text(stage: str, task_id: str) -> str:
    return f"{stage} started ({short_task_id(task_id, stage)})"


def stage_finished_text(stage: str, summary: str) -> str:
    return f"{stage} finished: {summary}"


def stage_failed_text(stage: str, task_id: str, error: str, try_number: int | None, max_tries: int | None) -> str:
    tries = f" after {try_number} of {max_tries} tries" if try_number and max_tries and max_tries > 1 else ""
    return f"{stage} FAILED at {short_task_id(task_id, stage)}{tries}: {one_line(error) or 'no error recorded'}"


def short_task_id(task_id: str, group_id: str) -> str:
    """'step_25.slo_gate' for 'stage_10_traffic_migration.step_25.slo_gate' in its own stage."""
    return task_id.removeprefix(f"{group_id}.")


# ------------------------------------------------------------------------------------ gates, rollback, verdict


def gate_decision_text(step_label: str, gate_event: Mapping[str, Any] | None, error: str | None = None) -> str:
    """The gate's own decision line ('Promote past 25 %: ...', 'Halt at 25 %: ...'), plus how fast the
    trigger's reflex put traffic back on blue after a halt. Without an event (the gate broke before
    deciding) the error stands in: the run halts on it."""
    if not gate_event:
        return f"Gate at {step_label}: no decision recorded, the run halts: {one_line(error or 'the gate task failed')}"
    line = one_line(gate_event.get("line") or gate_event.get("reason") or gate_event.get("status"))
    decided, restored = gate_event.get("decided_at"), gate_event.get("traffic_restored_at")
    if isinstance(decided, (int, float)) and isinstance(restored, (int, float)):
        line += f"; reflex rollback: traffic on blue {max(0.0, restored - decided):.2f} s after the decision"
    if gate_event.get("reflex_error"):
        line += f"; reflex rollback NOT verified: {one_line(gate_event['reflex_error'], 200)}"
    return line


def rollback_text(halt: Mapping[str, Any] | None, flags: Mapping[str, Any] | None, traffic: Mapping[str, Any] | None,
                  verified: Mapping[str, Any] | None, error: str | None = None) -> str:
    """What was rolled back, how long it took and why, from the rollback group's records: the halt
    (step, reason, decided_at, the reflex's traffic_restored_at), each level's result, the check."""
    halt = halt or {}
    step = halt.get("step") or "an unknown step"
    levels = []
    if flags:
        levels.append("flags -> Rails" + ("" if flags.get("verdict", "PASS") == "PASS" else " (NOT verified)"))
    if traffic:
        weights = traffic.get("weights")
        levels.append("traffic -> 100 % blue" + (f" (weights {format_weights(weights)})" if weights else ""))
    what = ", ".join(levels) or "nothing recorded"
    timing = rollback_seconds(halt, traffic)
    took = f" in {timing:.2f} s from the halt decision" if timing is not None else ""
    if error:
        head = f"Rollback after {step} NOT verified ({what}): {one_line(error, 300)}"
    else:
        check = one_line((verified or {}).get("reason") or "blue serving", 200)
        head = f"Rolled back after {step}{took}: {what}; {check}"
    return f"{head}. Why: {one_line(halt.get('reason') or 'no halt recorded', 300)}"


def rollback_seconds(halt: Mapping[str, Any], traffic: Mapping[str, Any] | None) -> float | None:
    """Seconds from the halt decision until traffic was back on blue: the gate's reflex time when it
    restored traffic, else the rollback task's read-back time."""
    decided = halt.get("decided_at")
    restored = halt.get("traffic_restored_at") or (traffic or {}).get("verified_at")
    if isinstance(decided, (int, float)) and isinstance(restored, (int, float)):
        return max(0.0, restored - decided)
    return None


def format_weights(weights: Any) -> str:
    if isinstance(weights, Mapping):
        return ", ".join(f"{name} {value}" for name, value in weights.items())
    return str(weights)


def verdict_text(result: Mapping[str, Any] | None, error: str | None = None) -> str:
    if error:
        return f"Cutover verdict: {one_line(error)}"
    result = result or {}
    return f"Cutover verdict: {result.get('outcome', 'unknown')}: {one_line(result.get('reason') or '')}".rstrip(": ")


def database_rollback_text(result: Mapping[str, Any] | None, error: str | None = None) -> str:
    if error:
        return f"Database rollback (down migration) NOT verified: {one_line(error)}"
    return f"Database rolled back (down migration, no traffic had moved): {one_line((result or {}).get('reason') or 'verified')}"


def emergency_latched_text(latch: Mapping[str, Any] | None, error: str | None = None) -> str:
    if error or not latch or not latch.get("latched"):
        why = error or (latch or {}).get("error") or "no record"
        return f"EMERGENCY STOP requested but NOT latched: {one_line(why)} (flags and traffic go back to blue anyway)"
    stop = latch.get("stop") or {}
    if isinstance(stop, str):  # control.EmergencyStop.to_json(): a JSON string in the latch's XCom
        try:
            stop = json.loads(stop)
        except ValueError:
            stop = {}
    who = stop.get("requested_by") if isinstance(stop, Mapping) else None
    return (f"EMERGENCY STOP latched{f' by {who}' if who else ''}: {one_line(latch.get('reason') or (stop or {}).get('reason'))}; "
            "the cutover stops advancing and rolls back, flags and traffic go back to blue")


def emergency_report_text(report: Mapping[str, Any] | None, error: str | None = None) -> str:
    if error:
        return f"Emergency rollback INCOMPLETE: {one_line(error)}"
    return f"Emergency rollback: {one_line((report or {}).get('line') or 'done')}"


# ------------------------------------------------------------------------------------ deadlines


def deadline_missed_text(what: str, bound_seconds: float, plan_name: str, dag_run: Mapping[str, Any] | None,
                         deadline_time: Any = None) -> str:
    """A run still going past its deadline: which bound, from which plan, since when."""
    run = dag_run or {}
    state = run.get("state") or "running"
    since = run.get("queued_at") or run.get("start_date") or "its start"
    limit = format_duration(bound_seconds)
    return (f"DEADLINE MISSED: {what} not done {limit} after the run was queued ({since}); the bound comes from "
            f"plan {plan_name!r}; run state {state}" + (f", deadline was {deadline_time}" if deadline_time else ""))


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return " ".join(part for part in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "",
                                      f"{secs} s" if secs or seconds == 0 else "") if part)
