"""Stage-2 database preparation timings: datagen, backfill (with and without app writes), pg_dump +
verified restore, last-resort restore. Median of N runs on a private PostgreSQL (no other services).

The backup is measured as stage 2 takes it: of the legacy database (before the expand), verified
with ``verify_backup(compare_live=False)`` as the DAG's backup task does.

    python -m benchmarks.db_prep [--orders 1000000] [--runs 3] [--port-offset 4100] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any


from cutover_kit.db import backup, migrations, restore, verify  # noqa: E402
from sandbox import datagen  # noqa: E402
from sandbox.app_writes import AppSession  # noqa: E402
from sandbox.config import scratch_config  # noqa: E402
from sandbox.launcher import Sandbox  # noqa: E402


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


class Writer:
    """A small app-like writer: blue and green alternately insert an order and update another."""

    def __init__(self, dsn: str, max_order_id: int, pause: float = 0.01) -> None:
        self.dsn, self.max_order_id, self.pause = dsn, max_order_id, pause
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(30)
        ordered = sorted(self.latencies) or [0.0]
        return {"writes": len(self.latencies), "errors": len(self.errors),
                "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
                "max_ms": round(1000 * ordered[-1], 1)}

    def _run(self) -> None:
        blue, green = AppSession(self.dsn, "blue"), AppSession(self.dsn, "green")
        n = 0
        try:
            while not self._stop.is_set():
                n += 1
                target = 1 + (n * 7919) % self.max_order_id
                started = time.perf_counter()
                try:
                    if n % 2:
                        blue.blue_create_order(1 + n % 1000, 100 + n)
                        blue.fetch_one("UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = %s RETURNING id", (target,))
                    else:
                        green.green_create_order(1 + n % 1000, f"{n % 1000}.50")
                        green.fetch_one("UPDATE orders SET status_v2 = 'shipped' WHERE id = %s RETURNING id", (target,))
                except Exception as error:  # noqa: BLE001 - counted
                    self.errors.append(repr(error))
                self.latencies.append(time.perf_counter() - started)
                time.sleep(self.pause)
        finally:
            blue.close()
            green.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port-offset", type=int, default=4100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    box = Sandbox(scratch_config("cutover-dbprep-", args.port_offset, SANDBOX_SCHEMA="legacy", SANDBOX_ORDERS="0"))
    state_dir = box.config.state_dir
    results: dict[str, Any] = {"orders": args.orders, "runs": args.runs}
    try:
        box.up_database()
        dsn = box.dsn()

        def fresh_legacy() -> datagen.DatagenReport:
            migrations.migrate_down(dsn, migrations.EXPAND_VERSION, expected_current=migrations.EXPAND_VERSION)
            return datagen.generate(dsn, args.orders, replace=True)

        runs = [fresh_legacy() for _ in range(args.runs)]
        results["datagen"] = {"seconds_median": median([r.seconds for r in runs]), "seconds": [r.seconds for r in runs],
                              "rows": dataclasses.asdict(runs[-1])}
        print("datagen", results["datagen"], flush=True)
        results["load_average_before"] = os.getloadavg()

        for label, with_writer in (("backfill", False), ("backfill_with_writes", True)):
            reports, writes, before = [], [], []
            for _ in range(args.runs):
                fresh_legacy()
                migrations.migrate_up(dsn, migrations.EXPAND_VERSION, expected_current=migrations.BASE_VERSION)
                if with_writer:  # the same writer for 10 s before the backfill: its p99 is the yardstick
                    quiet = Writer(dsn, args.orders).start()
                    time.sleep(10)
                    before.append(quiet.stop())
                writer = Writer(dsn, args.orders).start() if with_writer else None
                reports.append(migrations.backfill(dsn))
                if writer:
                    writes.append(writer.stop())
                assert reports[-1].complete, reports[-1]
            results[label] = {
                "seconds_median": median([r.seconds for r in reports]),
                "orders_seconds_median": median([r.tables["orders"]["seconds"] for r in reports]),
                "max_batch_seconds": max(r.max_batch_seconds for r in reports),
                "rows": reports[-1].rows, "tables": reports[-1].tables, "writer": writes, "writer_before": before,
            }
            if with_writer:
                results[label]["write_p99_ratio_median"] = median(
                    [during["p99_ms"] / max(quiet["p99_ms"], 0.001) for during, quiet in zip(writes, before)]
                )
            print(label, results[label], flush=True)

        # What stage 2 backs up: the legacy database before the expand (not the expanded, backfilled
        # one the loop above leaves behind), with the DAG's own call: verify_backup(compare_live=False).
        fresh_legacy()
        backup_dir = state_dir / "backups"
        dumps, verifies, records = [], [], []
        for _ in range(args.runs):
            record = backup.backup_database(dsn, backup_dir)
            verification = verify.verify_backup(dsn, record, compare_live=False)
            assert verification.verified and verification.restored_matches_dump, verification.mismatches
            dumps.append(record.seconds)
            verifies.append(verification.seconds)
            records.append(record)
            print("backup run", {"pg_dump_s": record.seconds, "verify_s": verification.seconds,
                                 "load": round(os.getloadavg()[0], 2)}, flush=True)
        results["backup"] = {"pg_dump_seconds_median": median(dumps), "verify_seconds_median": median(verifies),
                             "total_seconds_median": median([d + v for d, v in zip(dumps, verifies)]),
                             "pg_dump_seconds": dumps, "verify_seconds": verifies,
                             "bytes": records[-1].bytes, "compress": backup.DUMP_COMPRESSION,
                             "archive_entries": verification.archive_entries}
        print("backup", results["backup"], flush=True)

        restores = [restore.restore_database(dsn, records[-1]) for _ in range(args.runs)]
        results["restore_database"] = {"seconds_median": median([r.seconds for r in restores]),
                                       "downtime_seconds_max": max(r.downtime_seconds for r in restores)}
        print("restore_database", results["restore_database"], flush=True)
    finally:
        box.down()
        shutil.rmtree(state_dir, ignore_errors=True)
    results["load_average_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
