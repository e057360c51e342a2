"""Benchmark: one SLO-gate integrity probe (cutover_kit.db.integrity_probe) against a running sandbox.

    python -m benchmarks.integrity_probe [--since-seconds 40] [--reads 30] [--ledger FILE] [--json OUT]

Points at the sandbox the SANDBOX_* variables name (SANDBOX_DIR and ports, as `make sandbox-up` or a
rehearsal left them) while traffic flows: the probe's step is the last ``--since-seconds`` (a step of
the rehearsal plan lasts 10-40 s), its ledger the acknowledged-writes file when given. Reports the
first read (connect + watermarks + one probe) and the median / max of the following reads, each
timed around IntegrityProbe.read() as the trigger calls it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks import REPO_ROOT  # noqa: F401 - puts the project on the path

from cutover_kit.db.integrity_probe import IntegrityProbe  # noqa: E402
from cutover_kit.integrity import judge_integrity  # noqa: E402
from sandbox.config import SandboxConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since-seconds", type=float, default=40.0)
    parser.add_argument("--reads", type=int, default=30)
    parser.add_argument("--ledger", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    dsn = SandboxConfig.from_env().app_dsn()
    probe = IntegrityProbe(lambda: dsn, time.time() - args.since_seconds, args.ledger)
    timings = []
    try:
        for _ in range(args.reads):
            started = time.perf_counter()
            snapshot = probe.read()
            timings.append(time.perf_counter() - started)
            time.sleep(0.05)
    finally:
        probe.close()
    result = {
        "first_read_ms": round(timings[0] * 1000, 2),
        "median_ms": round(statistics.median(timings[1:]) * 1000, 2),
        "max_ms": round(max(timings[1:]) * 1000, 2),
        "reads": len(timings),
        "rows_checked": dict(snapshot.rows_checked),
        "acknowledged": snapshot.acknowledged,
        "last_reason": judge_integrity(snapshot).reason,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
