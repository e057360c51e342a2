"""Proving a backup restorable (no Airflow): :func:`verify_backup` lists the archive's whole table of
contents, restores its tables and rows into a scratch database (no indexes, constraints or
triggers: a comparison needs none) and compares, per table, the restored rows with the
fingerprints taken at dump time and, unless told not to, with the live database now.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from cutover_kit.db.backup import BackupRecord, file_problems, methods_of
from cutover_kit.db.fingerprints import snapshot_fingerprints
from cutover_kit.db.pg_client import client_tool, conninfo, connect, create_database_like, drop_database, dsn_params
from cutover_kit.db.restore import check_scratch_name, restore_for_comparison


@dataclass(frozen=True)
class BackupVerification:
    verified: bool  # the backup restores exactly what was dumped AND equals the live database now
    # table -> live_count, restored_count, live_checksum, restored_checksum, dumped_count, dumped_checksum
    tables: dict[str, dict[str, Any]]
    mismatches: list[str]
    restored_matches_dump: bool = True  # the file is intact and restorable, whatever happened live since
    seconds: float = 0.0
    archive_entries: int = 0  # entries of the archive's table of contents (pg_restore --list), all read back

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_backup(dsn: str, record: BackupRecord, scratch_db: str = "cutover_verify",
                  compare_live: bool = True) -> BackupVerification:
    """Restore `record` into `scratch_db` (dropped first and afterwards) and compare every table
    with the dump-time fingerprints and, when `compare_live`, with the live database now.

    What is proven, and how (see :func:`restore_for_comparison`): the archive's whole table of
    contents reads back, and every table's rows restore to exactly what was dumped. The scratch
    copy gets no indexes, constraints or triggers (the archive's post-data section): counts and
    checksums do not need them, and building them was most of the restore time. Restoring
    *everything* is :func:`restore_database`'s job, tested on its own.

    `compare_live=False` skips the second full pass over the live database: while the apps keep
    writing it cannot equal the dump anyway, and the cutover decides on ``restored_matches_dump``
    only. `verified` then means exactly that.
    """
    started = time.monotonic()
    params = dsn_params(dsn)
    check_scratch_name(scratch_db, params["dbname"])
    mismatches = file_problems(record)
    if mismatches:
        return BackupVerification(verified=False, tables={}, mismatches=mismatches, restored_matches_dump=False,
                                  seconds=round(time.monotonic() - started, 3))
    methods = methods_of(record)
    with connect(dsn) as conn:
        pg_restore = client_tool(conn, "pg_restore")
        conn.autocommit = True
        try:
            create_database_like(conn, scratch_db, params["dbname"])
            entries = restore_for_comparison(pg_restore, record, {**params, "dbname": scratch_db})
            restored_dsn = conninfo({**params, "dbname": scratch_db})
            if compare_live:
                # Both sides at once: each is one CPU-bound scan per table in its own backend.
                with ThreadPoolExecutor(max_workers=2) as pool:
                    restored_future = pool.submit(snapshot_fingerprints, restored_dsn, methods)
                    live = snapshot_fingerprints(dsn, methods)
                    restored = restored_future.result()
            else:
                live, restored = {}, snapshot_fingerprints(restored_dsn, methods)
        finally:
            conn.autocommit = True
            drop_database(conn, scratch_db)
    dumped = record.fingerprints
    tables: dict[str, dict[str, Any]] = {}
    intact = True
    for table in sorted(set(live) | set(restored) | set(dumped)):
        entry = {
            "live_count": live.get(table, {}).get("count"), "restored_count": restored.get(table, {}).get("count"),
            "live_checksum": live.get(table, {}).get("checksum"),
            "restored_checksum": restored.get(table, {}).get("checksum"),
            "dumped_count": dumped.get(table, {}).get("count"), "dumped_checksum": dumped.get(table, {}).get("checksum"),
        }
        tables[table] = entry
        if dumped and (entry["restored_count"], entry["restored_checksum"]) != (entry["dumped_count"], entry["dumped_checksum"]):
            intact = False
            mismatches.append(f"{table}: the backup does not restore what was dumped "
                              f"({_describe(entry['dumped_count'], entry['dumped_checksum'])} dumped, "
                              f"{_describe(entry['restored_count'], entry['restored_checksum'])} restored)")
        if compare_live and (entry["live_count"], entry["live_checksum"]) != (entry["restored_count"], entry["restored_checksum"]):
            mismatches.append(f"{table}: live {_describe(entry['live_count'], entry['live_checksum'])}, "
                              f"restored {_describe(entry['restored_count'], entry['restored_checksum'])}")
    return BackupVerification(verified=not mismatches, tables=tables, mismatches=mismatches,
                              restored_matches_dump=intact, seconds=round(time.monotonic() - started, 3),
                              archive_entries=len(entries))


def _describe(count: int | None, checksum: str | None) -> str:
    return "no such table" if count is None else f"{count} rows, checksum {checksum[:12]}"
