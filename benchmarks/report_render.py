"""Benchmark: time to render the post-launch report (stage 15) from a run record.

    python -m benchmarks.report_render --record <report dir>/record.json [--runs 5] [--json benchmarks/report_render.json]

The record is one a real rehearsal wrote (``<result stem>-report/cutover/<run_id>/record.json``).
Each run is a fresh process, as the Airflow task is: it imports altair and vl-convert-python,
builds the five charts, renders them to PNG, writes report.html and record.json into a scratch
directory. Reported: the whole render (``cold_seconds``, what the task's ``render_seconds``
measures on a worker's first report) and a second render in the same process (``warm_seconds``).
The figure depends on the machine's load: the JSON records the load average at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import REPO_ROOT  # also puts the project on the path

CHILD = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from cutover_kit.report.record import RunRecord
from cutover_kit.report.render import write_report
record = RunRecord.from_dict(json.loads(Path(sys.argv[1]).read_text()))
first = write_report(record, Path(sys.argv[2]) / "first")
cold = time.perf_counter() - started
started = time.perf_counter()
write_report(record, Path(sys.argv[2]) / "second")
warm = time.perf_counter() - started
print(json.dumps({"cold_seconds": cold, "warm_seconds": warm, "charts": len(first["charts"]),
                  "chart_errors": first["chart_errors"], "series": len(record.series),
                  "points": sum(len(s.points) for s in record.series)}))
"""


def one_run(record: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")])}
    with tempfile.TemporaryDirectory(prefix="report-bench-") as scratch:
        done = subprocess.run([sys.executable, "-c", CHILD, str(record), scratch], env=env, capture_output=True,
                              text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", type=Path, required=True, help="record.json written by stage 15")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    if not args.record.is_file():
        parser.error(f"no record at {args.record}: run a rehearsal first (make rehearsal)")
    load = os.getloadavg()
    runs = []
    for _ in range(args.runs):
        started = time.perf_counter()
        run = one_run(args.record)
        run["process_seconds"] = time.perf_counter() - started
        runs.append(run)
    figures = {
        "what": "post-launch report render: 5 PNG charts + HTML from a rehearsal's run record, fresh process",
        "record": str(args.record),
        "runs": runs,
        "cold_seconds_median": round(statistics.median(r["cold_seconds"] for r in runs), 3),
        "warm_seconds_median": round(statistics.median(r["warm_seconds"] for r in runs), 3),
        "process_seconds_median": round(statistics.median(r["process_seconds"] for r in runs), 3),
        "load_average_at_start": [round(x, 2) for x in load],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
