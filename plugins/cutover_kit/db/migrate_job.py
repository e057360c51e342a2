"""Stage 2's schema change as a one-shot process, for a Kubernetes pod (the KubernetesPodOperator
of ``stages.database_preparation.migration_pod_operator``) or any other job runner:

    python -m cutover_kit.db.migrate_job expand     # the expand migration, BASE -> EXPAND (idempotent)
    python -m cutover_kit.db.migrate_job backfill   # the batched backfill of the new columns, then VACUUM ANALYZE

The database comes from the environment variable CUTOVER_DATABASE_DSN (a libpq DSN or URL, set
from a Kubernetes Secret, never from an argument that would show in the pod spec). One line says
what happened; the exit code is 0 when the database is in the wanted state, 1 when it was refused
(nothing changed), 2 for bad usage. The same functions as the Airflow tasks: no Airflow import.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from cutover_kit.db.schema_versions import BASE_VERSION, EXPAND_VERSION

DSN_ENV = "CUTOVER_DATABASE_DSN"
STEPS = ("expand", "backfill")


def run(step: str, environ: Mapping[str, str]) -> tuple[int, str]:
    """(exit code, the one line to print)."""
    if step not in STEPS:
        return 2, f"usage: python -m cutover_kit.db.migrate_job {{{'|'.join(STEPS)}}} (got {step!r})"
    dsn = environ.get(DSN_ENV, "").strip()
    if not dsn:
        return 2, f"{DSN_ENV} is not set: give the database's libpq DSN through the environment (a Secret)"
    from cutover_kit.db.migrations import MigrationError, backfill, migrate_up, vacuum_analyze

    if step == "expand":
        try:
            report = migrate_up(dsn, EXPAND_VERSION, expected_current=BASE_VERSION)
        except MigrationError as error:
            return 1, f"Expand refused: {error}"
        if report.noop:
            return 0, f"Expand {EXPAND_VERSION} already applied (no-op)"
        return 0, f"Expand {report.from_version} -> {report.to_version} applied in {report.seconds:.2f} s"
    report = backfill(dsn)
    if not report.complete:
        return 1, f"Backfill incomplete: {report.remaining} rows still NULL (run it again)"
    vacuum_seconds = vacuum_analyze(dsn)
    return 0, (f"Backfill: {report.rows} rows in {report.batches} batches, {report.seconds:.1f} s; "
               f"VACUUM ANALYZE {vacuum_seconds:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    code, line = run(args[0] if len(args) == 1 else " ".join(args), os.environ)
    print(line, file=sys.stderr if code else sys.stdout, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
