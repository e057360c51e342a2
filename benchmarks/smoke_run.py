"""One `smoke` DAG run, timed: median of N runs, under a real scheduler and/or with dag.test().

    python -m benchmarks.smoke_run [--mode scheduler|dag-test|both] [--runs 5] [--json benchmarks/smoke_run.json]

Both modes start a private sandbox (its own state directory under /tmp, ports = defaults +
--port-offset) and stop it at the end.

- ``scheduler``: ``airflow standalone`` (SQLite, LocalExecutor) with a private AIRFLOW_HOME under
  /tmp and its API on --api-port. The `smoke` DAG is unpaused, so the scheduler creates its
  scheduled run for the latest 15-minute interval by itself; the remaining runs are triggered over
  the REST API one after the other (the same scheduler, executor and tasks; max_active_runs is 1).
  A run's time is end_date - start_date as the REST API reports it: scheduler hand-over between
  tasks included, API start-up and DAG parsing not. Then (unless --no-failing-run) one more run
  with green's body_drift fault on: its parity task must fail and a real local webhook receiver
  must get the notice; that run's time and the notice's first lines are reported too.
- ``dag-test``: ``python -m sandbox.dag_runner smoke`` in a fresh process per run; the figure is
  the run's own end_date - start_date, and the whole process (Airflow import, metadata database
  reset, DAG parse) is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import REPO_ROOT  # also puts the project on the path

TARGET_SECONDS = 30.0

from sandbox.airflow_stack import seconds_between  # noqa: E402


def sandbox_config(port_offset: int) -> Any:
    from sandbox.config import scratch_config

    return scratch_config("smoke-bench-sbx-", port_offset)


def connection_env(sandbox: Any) -> dict[str, str]:
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in sandbox.connections().items()}


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# ------------------------------------------------------------------------------------ dag.test()


def bench_dag_test(sandbox: Any, runs: int) -> dict[str, Any]:
    from sandbox.dag_runner import MARKER

    samples = []
    for index in range(runs):
        home = Path(tempfile.mkdtemp(prefix="smoke-bench-af-"))
        env = dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
                   AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
                   PYTHONPATH=f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'plugins'}", **connection_env(sandbox))
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "sandbox.dag_runner", "smoke", "--reset-db"], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=600)
        process_s = round(time.monotonic() - began, 3)
        shutil.rmtree(home, ignore_errors=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
        if not lines:
            raise RuntimeError(f"dag.test run {index + 1} printed no outcome: {(done.stdout + done.stderr)[-3000:]}")
        outcome = json.loads(lines[-1].removeprefix(MARKER))
        sample = {"state": outcome["state"], "run_s": seconds_between(outcome["start_date"], outcome["end_date"]),
                  "process_s": process_s, "load": load_average()}
        print(f"dag-test run {index + 1}/{runs}: {sample}", file=sys.stderr, flush=True)
        samples.append(sample)
    return summarise(samples)


# ------------------------------------------------------------------------------------ real scheduler


def bench_scheduler(sandbox: Any, runs: int, api_port: int, log_port_base: int, failing_run: bool) -> dict[str, Any]:
    from sandbox.airflow_stack import AirflowStack
    from sandbox.webhook_receiver import WebhookReceiver

    home = Path(tempfile.mkdtemp(prefix="smoke-bench-standalone-"))
    receiver = WebhookReceiver().start()
    connections = {**sandbox.connections(), "smoke_webhook": receiver.connection()}
    airflow = AirflowStack(home, api_port, connections=connections, log_port_base=log_port_base)
    samples = []
    failing: dict[str, Any] | None = None
    try:
        started = time.monotonic()
        airflow.start()
        print(f"standalone healthy in {time.monotonic() - started:.0f} s (home {home})", file=sys.stderr, flush=True)
        airflow.unpause("smoke")  # -> the scheduler creates the latest interval's scheduled run
        run = airflow.wait_for_scheduled_run("smoke")
        for index in range(runs):
            sample = {"run_id": run["dag_run_id"], "run_type": run["run_type"], "state": run["state"],
                      "run_s": seconds_between(run["start_date"], run["end_date"]),
                      "queued_to_start_s": seconds_between(run.get("queued_at"), run["start_date"]),
                      "task_s": airflow.task_timings("smoke", run["dag_run_id"]), "load": load_average()}
            print(f"scheduler run {index + 1}/{runs}: {sample}", file=sys.stderr, flush=True)
            samples.append(sample)
            if index + 1 < runs:
                run = airflow.wait_for_run("smoke", triggered_run_id(airflow))
        if failing_run:
            failing = timed_failing_run(sandbox, airflow, receiver)
    finally:
        airflow.stop()
        receiver.stop()
        shutil.rmtree(home, ignore_errors=True)
    summary = summarise(samples)
    if failing is not None:
        summary["failing_run"] = failing
    return summary


def triggered_run_id(airflow: Any) -> str:
    reply = airflow.trigger("smoke")
    reply.raise_for_status()
    return reply.json()["dag_run_id"]


def timed_failing_run(sandbox: Any, airflow: Any, receiver: Any) -> dict[str, Any]:
    """Green's body_drift on, one triggered run: the parity task must fail and the webhook be posted."""
    import requests

    fault = f"{sandbox.config.app_url('green')}/__fault"
    requests.post(fault, json={"body_drift": True}, timeout=5).raise_for_status()
    try:
        before = len(receiver.received)
        run = airflow.wait_for_run("smoke", triggered_run_id(airflow))
        posted = receiver.wait_for(before + 1, timeout=30)[before:]
    finally:
        requests.delete(fault, timeout=5).raise_for_status()
    text = posted[0]["body"]["text"] if posted else ""
    result = {"state": run["state"], "run_s": seconds_between(run["start_date"], run["end_date"]),
              "task_s": airflow.task_timings("smoke", run["dag_run_id"]), "notifications": len(posted),
              "notified_lines": text.splitlines()[:3], "load": load_average()}
    print(f"failing run (green body_drift): {result}", file=sys.stderr, flush=True)
    return result


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    times = [s["run_s"] for s in samples if s["run_s"] is not None]
    failed = [s for s in samples if s["state"] != "success"]
    summary = {"runs": len(samples), "failed_runs": len(failed), "median_run_s": round(statistics.median(times), 3),
               "min_run_s": min(times), "max_run_s": max(times), "target_s": TARGET_SECONDS,
               "met": not failed and statistics.median(times) <= TARGET_SECONDS, "samples": samples}
    if samples and "process_s" in samples[0]:
        summary["median_process_s"] = round(statistics.median(s["process_s"] for s in samples), 3)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.smoke_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("scheduler", "dag-test", "both"), default="both")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--port-offset", type=int, default=5300, help="sandbox ports = defaults + this")
    parser.add_argument("--api-port", type=int, default=8181, help="airflow standalone API port (scheduler mode)")
    parser.add_argument("--log-port-base", type=int, default=8893, help="worker/triggerer log-server ports (scheduler mode)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    parser.add_argument("--no-failing-run", action="store_true",
                        help="scheduler mode: skip the extra run with green's body_drift on (notification check)")
    args = parser.parse_args(argv)

    from sandbox.launcher import Sandbox

    sandbox = Sandbox(sandbox_config(args.port_offset))
    result: dict[str, Any] = {"command": "python -m benchmarks.smoke_run " + " ".join(argv if argv is not None else sys.argv[1:]),
                              "load_before": load_average(), "cpus": os.cpu_count()}
    try:
        sandbox.up()
        if args.mode in ("scheduler", "both"):
            result["scheduler"] = bench_scheduler(sandbox, args.runs, args.api_port, args.log_port_base,
                                                  failing_run=not args.no_failing_run)
        if args.mode in ("dag-test", "both"):
            result["dag_test"] = bench_dag_test(sandbox, args.runs)
    finally:
        sandbox.down()
        shutil.rmtree(sandbox.config.state_dir, ignore_errors=True)
    result["load_after"] = load_average()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
