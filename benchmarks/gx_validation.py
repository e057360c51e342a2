"""Stage-2 Great Expectations validation timings: wall seconds and peak RSS of the validating
process, median of N runs, each run in a fresh Python process (so the GX import is counted).

    python -m benchmarks.gx_validation [--orders 1000000] [--runs 3] [--port-offset 5200] [--json out.json]
    python -m benchmarks.gx_validation --dsn DSN --backup-dsn DSN   # an already migrated database

Without --dsn it does what stage 2 does on a private PostgreSQL (legacy schema, `--orders`
orders, ~3 line items each): a real backup of the legacy database (its dump-time fingerprints are
the snapshot), the expand migration, the backfill and its VACUUM ANALYZE (as the DAG's backfill
task does), then measures. Before every measured run the backup is restored afresh into the
scratch database the checksums compare against (``restore.restore_to_scratch``, as the DAG's
restore task does: no indexes, unlogged, never read before), not timed. Two scopes: all three
tables, and orders alone.

The GX import is timed apart (``import_s``): it is paid once per task process, whatever the
data. ``validate_s`` (the target's figure) is the validation itself: context, suites, queries,
summary; ``artifacts_s`` is writing the JSON and the Data Docs page.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import REPO_ROOT  # also puts the project on the path


def child(args: argparse.Namespace) -> int:
    """One validation in this process; prints one JSON line."""
    started = time.monotonic()
    from cutover_kit import validation

    validation.silence_gx_import_logs()
    before_import = time.monotonic()
    import great_expectations  # noqa: F401 - timed on purpose

    import_s = time.monotonic() - before_import
    snapshot = json.loads(args.snapshot)
    tables = args.tables.split(",") if args.tables != "all" else None
    # The snapshot is the backup's own (its dump-time fingerprints, or row counts of the backup
    # copy with --dsn), so its max ids are the backup's, as the DAG passes them from the record.
    backup_max_ids = {table: entry.get("max_id") for table, entry in snapshot.items()}
    results, summary = validation.timed_validation(_url(args.dsn), backup_url=_url(args.backup_dsn),
                                                   snapshot=snapshot, tables=tables, backup_max_ids=backup_max_ids)
    saved = time.monotonic()
    validation.save_artifacts(results, Path(args.out), summary)
    print(json.dumps({"expectations": summary.expectations, "failed": summary.failed, "import_s": round(import_s, 3),
                      "validate_s": summary.seconds, "artifacts_s": round(time.monotonic() - saved, 3),
                      "in_process_s": round(time.monotonic() - started, 3),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "failed_names": summary.failed_names}))
    return 0


def _url(dsn: str) -> str:
    import psycopg2.extensions

    from cutover_kit.validation import postgres_url

    p = psycopg2.extensions.parse_dsn(dsn)
    return postgres_url(host=p.get("host", ""), port=p.get("port"), login=p.get("user"), password=p.get("password"),
                        database=p["dbname"])


def measure(dsn: str, backup_dsn: str, snapshot: dict[str, int], tables: str, runs: int,
            before_run: Any = None) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        if before_run is not None:
            before_run()
        out = tempfile.mkdtemp(prefix="gx-bench-")
        argv = [sys.executable, "-m", "benchmarks.gx_validation", "--child", "--dsn", dsn, "--backup-dsn", backup_dsn,
                "--snapshot", json.dumps(snapshot), "--tables", tables, "--out", out]
        env = dict(os.environ, PYTHONPATH=f"{REPO_ROOT}:{REPO_ROOT / 'plugins'}")
        began = time.monotonic()
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout, stderr = proc.communicate(timeout=600)
        wall = time.monotonic() - began
        shutil.rmtree(out, ignore_errors=True)
        if proc.returncode != 0:
            raise RuntimeError(f"validation process failed: {stderr[-2000:]}")
        sample = json.loads(stdout.strip().splitlines()[-1])
        if sample["failed"]:
            raise RuntimeError(f"validation failed on a clean database: {sample['failed_names']}")
        sample["process_wall_s"] = round(wall, 3)
        sample["load_average"] = round(os.getloadavg()[0], 2)
        print(json.dumps({k: sample[k] for k in ("validate_s", "import_s", "peak_rss_mb", "load_average")}),
              file=sys.stderr, flush=True)
        samples.append(sample)
    keys = ("process_wall_s", "import_s", "validate_s", "artifacts_s", "peak_rss_mb")
    return {"tables": tables, "runs": runs, "expectations": samples[0]["expectations"],
            **{f"median_{key}": round(statistics.median(s[key] for s in samples), 2) for key in keys},
            "samples": samples}


SCRATCH_DB = "cutover_gx_backup"


def prepare(orders: int, port_offset: int) -> tuple[Any, str, str, dict[str, Any], Any]:
    """Sandbox PostgreSQL -> (box, live dsn, scratch dsn, snapshot, restore_scratch)."""
    from cutover_kit.db import backup, migrations, restore
    from cutover_kit.stages.database_preparation import snapshot_from_backup
    from sandbox.config import scratch_config
    from sandbox.launcher import Sandbox

    config = scratch_config("gx-bench-sbx-", port_offset, SANDBOX_READY_TIMEOUT="60", SANDBOX_SCHEMA="legacy",
                            SANDBOX_ORDERS=str(orders))
    state = config.state_dir
    box = Sandbox(config)
    started = time.monotonic()
    box.up_database()
    dsn = box.dsn()
    record = backup.backup_database(dsn, state / "backups")
    snapshot = snapshot_from_backup(record.as_dict())
    migrations.migrate_up(dsn, migrations.EXPAND_VERSION, expected_current=migrations.BASE_VERSION)
    filled = migrations.backfill(dsn)
    vacuumed = migrations.vacuum_analyze(dsn)
    print(f"prepared {snapshot} in {time.monotonic() - started:.0f}s (backfill {filled.seconds:.0f}s, "
          f"VACUUM ANALYZE {vacuumed:.0f}s)", file=sys.stderr)

    def restore_scratch() -> None:
        restore.restore_to_scratch(dsn, record, SCRATCH_DB)

    import psycopg2.extensions

    return box, dsn, psycopg2.extensions.make_dsn(dsn, dbname=SCRATCH_DB), snapshot, restore_scratch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gx_validation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--port-offset", type=int, default=5200)
    parser.add_argument("--dsn", help="an already migrated and backfilled database")
    parser.add_argument("--backup-dsn", help="with --dsn: the restored pre-migration backup")
    parser.add_argument("--scopes", default="all,orders", help="comma list of 'all' and/or table names")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    parser.add_argument("--tables", default="all", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    box = restore_scratch = None
    try:
        if args.dsn:
            from cutover_kit.stages.database_preparation import row_counts

            dsn, backup_dsn = args.dsn, args.backup_dsn or args.dsn
            snapshot = row_counts(backup_dsn)
        else:
            box, dsn, backup_dsn, snapshot, restore_scratch = prepare(args.orders, args.port_offset)
        report = {"snapshot": snapshot, "load_average": os.getloadavg(), "scopes": []}
        for scope in args.scopes.split(","):
            result = measure(dsn, backup_dsn, snapshot, scope, args.runs, restore_scratch)
            report["scopes"].append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
        report["load_average_after"] = os.getloadavg()
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
    finally:
        if box is not None:
            box.down()
            shutil.rmtree(box.config.state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
