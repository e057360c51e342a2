"""Data loss and corruption while green takes traffic: the SLO gate's integrity probe, judged here.

The probe (:mod:`cutover_kit.db.integrity_probe`) reads, on every gate poll, only the rows written
since the step began (an id watermark per table, found once from the step's start time):

- **agreement**: rows whose old (Rails) and new (TypeScript) columns of the expand migration
  (include/sql/migrations/20261126000001_expand_typescript_shape.up.sql) disagree. The sync
  triggers make a disagreement impossible through an ordinary write, so one means a writer went
  around them (a dual-writing app, a trigger dropped or disabled, a replica-mode bulk load) and
  one of the two shapes now holds a wrong value: whichever color reads it serves wrong data.
- **acknowledged writes**: order ids a client was told were written (the acknowledged-writes
  ledger, :mod:`cutover_kit.acknowledged_writes`) above the step's watermark that the database
  does not have.

:func:`judge_integrity` turns that snapshot into a verdict with a reason that names the table,
the column and a row id. Any violation is a FAIL that halts the gate at once: one lost or
corrupted write is already the damage the cutover exists to prevent; there is no noise to
average out. Pure Python: no I/O, no Airflow.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: How many disagreeing rows a probe reads per table: the first names the reason, the count says
#: how many it saw (at most this many; a capped count reads ">=").
DISAGREEMENT_SAMPLE = 5
#: How many missing ids a reason lists after the first.
MISSING_SHOWN = 5


@dataclass(frozen=True)
class ColumnPair:
    """One column of the legacy shape and its counterpart in the new one, and when they agree (SQL)."""

    old: str
    new: str
    disagree_sql: str  # true for a row where they disagree; evaluated on the probe's rows only


#: Per table, the column pairs the expand migration keeps equal (its sync triggers' rules). The
#: end-of-run check (stages/verdict.py) counts the same predicates over every row.
AGREEMENT: Mapping[str, tuple[ColumnPair, ...]] = {
    "orders": (
        ColumnPair("amount_cents", "amount", "amount IS DISTINCT FROM round(amount_cents / 100.0, 2)"),
        ColumnPair("status", "status_v2", "status_v2::text IS DISTINCT FROM status"),
    ),
    "line_items": (
        ColumnPair("unit_price_cents", "unit_price", "unit_price IS DISTINCT FROM round(unit_price_cents / 100.0, 2)"),
    ),
    "users": (
        ColumnPair("email", "email_normalized", "email_normalized IS DISTINCT FROM lower(btrim(email))"),
    ),
}
#: The table whose ids the acknowledged-writes ledger holds.
LEDGER_TABLE = "orders"
#: How a violation found by stage 11's probe (not the gate's) is marked in its reason, so the
#: report can say who stopped the step.
FIRST_LOOK_MARK = "found by stage 11, the step's first look at its rows"


@dataclass(frozen=True)
class Disagreement:
    """A row whose old and new columns disagree, as read: ``values`` maps each column of the
    table's pairs to its value (None for SQL NULL)."""

    table: str
    row_id: int
    values: Mapping[str, Any]

    def first_pair(self) -> ColumnPair:
        """The first of the table's pairs this row breaks (Python's view of the SQL predicate)."""
        for pair in AGREEMENT[self.table]:
            if not _agree(pair, self.values.get(pair.old), self.values.get(pair.new)):
                return pair
        return AGREEMENT[self.table][0]  # the database said they disagree; trust it


@dataclass(frozen=True)
class IntegritySnapshot:
    """What one probe read. ``acknowledged`` is None when no ledger is configured; ``missing`` are
    acknowledged ids above the orders watermark that the database does not have."""

    watermarks: Mapping[str, int]
    rows_checked: Mapping[str, int]  # rows since the watermark, per table
    disagreements: Sequence[Disagreement] = ()
    acknowledged: int | None = None  # acknowledged writes above the watermark (None: no ledger)
    missing: Collection[int] = field(default_factory=tuple)
    expanded: bool = True  # the expand migration is in place (else there is no new shape to compare)
    seconds: float = 0.0


@dataclass(frozen=True)
class IntegrityJudgement:
    intact: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "reason": self.reason}


def judge_integrity(snapshot: IntegritySnapshot) -> IntegrityJudgement:
    """Intact, or the first violation: a missing acknowledged write first (data loss), then a
    disagreement (corruption). The reason starts with ``data:`` and names table, column and row."""
    missing = sorted(snapshot.missing)
    if missing:
        more = f", {len(missing) - 1} more: {missing[1:1 + MISSING_SHOWN]}" if len(missing) > 1 else ""
        return IntegrityJudgement(False, (
            f"data: {LEDGER_TABLE} id {missing[0]} acknowledged to a client but not in the database "
            f"({len(missing)} of {snapshot.acknowledged} acknowledged writes since the step began missing{more})"))
    if snapshot.disagreements:
        first = min(snapshot.disagreements, key=lambda row: (list(AGREEMENT).index(row.table), row.row_id))
        pair = first.first_pair()
        count = sum(1 for row in snapshot.disagreements if row.table == first.table)
        seen = f">= {count}" if count >= DISAGREEMENT_SAMPLE else str(count)
        return IntegrityJudgement(False, (
            f"data: {first.table} id {first.row_id} {pair.old} {_shown(first.values.get(pair.old))} != "
            f"{pair.new} {_shown(first.values.get(pair.new))} (old vs new column; {seen} such {first.table} rows "
            f"since the step began)"))
    rows = sum(snapshot.rows_checked.values())
    compared = (f"{rows} rows since the step began, old and new columns agree" if snapshot.expanded
                else "legacy shape only, no columns to compare")
    if snapshot.acknowledged is None:
        ledger = "no acknowledged-writes ledger configured, so agreement only"
    else:
        ledger = f"{snapshot.acknowledged} acknowledged writes since the step began, all present"
    return IntegrityJudgement(True, f"data intact ({snapshot.seconds * 1000:.0f} ms probe): {compared}; {ledger}")


def acknowledged_since(acknowledged: Sequence[int], watermark: int) -> list[int]:
    """The ledger's ids written after the watermark (ids grow with time: a bigserial)."""
    return [order_id for order_id in acknowledged if order_id > watermark]


def _agree(pair: ColumnPair, old: Any, new: Any) -> bool:
    """Python mirror of ``pair.disagree_sql``, for naming the column (never for deciding)."""
    if pair.new in ("amount", "unit_price"):
        return old is not None and new is not None and round(float(old) / 100.0, 2) == float(new)
    if pair.new == "email_normalized":
        return old is not None and new == old.strip().lower()
    return old == new


def _shown(value: Any) -> str:
    return "NULL" if value is None else str(value)


def integrity_halt_line(step_label: str, judgement: IntegrityJudgement) -> str:
    """The gate's line for a data violation, e.g. 'Halt at 25 %: data: orders id 4711 amount_cents
    1999 != amount 29.99 (old vs new column; ...)'."""
    return f"Halt at {step_label}: {judgement.reason} (a data violation halts at once)"


def data_window_start(weights: Mapping[str, Any]) -> float:
    """When the step's rows begin, from its ``set_weights`` result: ``changing_at``, the instant
    before the router was told the new share (green may take the step's writes from then on, so
    the probe must cover them), else ``set_at`` (after the read-back; a result from before
    ``changing_at`` existed). Refuses a result with neither: a probe without a window would read
    the whole table or nothing."""
    for key in ("changing_at", "set_at"):
        value = weights.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    raise ValueError(f"set_weights result has no changing_at or set_at time: {dict(weights)!r}")
