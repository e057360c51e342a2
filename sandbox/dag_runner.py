"""Run one DAG of this project once with ``dag.test()`` and print its outcome as a JSON line.

    python -m sandbox.dag_runner smoke [--conf '{"parity_file": "..."}'] [--reset-db]

For tests and benchmarks that need a real DAG run in a fresh process: the caller sets AIRFLOW_HOME
(a private, file-based SQLite database; ``--reset-db`` creates it) and the AIRFLOW_CONN_* variables.
The last stdout line is ``DAG_RUN {"dag_id", "state", "tasks": {task_id: state}, "seconds", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Not cutover_kit.paths.REPO_ROOT: this module is what puts plugins/ (and so cutover_kit) on the path.
REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = "DAG_RUN "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.dag_runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("dag_id")
    parser.add_argument("--conf", default="{}", help="run conf (params) as JSON")
    parser.add_argument("--reset-db", action="store_true", help="create/reset the Airflow metadata database first")
    args = parser.parse_args(argv)
    conf = json.loads(args.conf)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    for path in (str(REPO_ROOT / "plugins"), str(REPO_ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)

    from airflow.dag_processing.dagbag import DagBag

    if args.reset_db:
        from airflow.utils import db

        db.resetdb()
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False)
    dag = bag.get_dag(args.dag_id)
    if dag is None:
        print(f"dag_runner: no DAG {args.dag_id!r} in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']} "
              f"(import errors: {bag.import_errors})", file=sys.stderr)
        return 2
    started = time.monotonic()
    run = dag.test(run_conf=conf)
    seconds = time.monotonic() - started
    outcome = {
        "dag_id": args.dag_id,
        "run_id": run.run_id,
        "state": str(run.state),
        "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()},
        "tries": {ti.task_id: ti.try_number for ti in run.get_task_instances()},
        "seconds": round(seconds, 3),
        "start_date": run.start_date.isoformat() if run.start_date else None,
        "end_date": run.end_date.isoformat() if run.end_date else None,
    }
    print(MARKER + json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
