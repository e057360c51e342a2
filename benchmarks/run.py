"""Benchmarks for BENCHMARKS.md: medians over several runs on the real sandbox.

    python -m benchmarks.run [--runs 5] [--rehearsals 3] [--out benchmarks/results.json]

1. Detection: fault onset (green starts failing 20 % at 25 % traffic) -> the gate's halt decision.
2. Rollback: halt decision -> 100 % blue verified by read-back (the gate's reflex).
3. Weight changes under load: 72 changes at 60 rps -> failed requests, lost writes.
4. DAG parse time per file (fresh interpreter, Airflow imported first, not counted).
5. Whole happy rehearsal wall time (`make rehearsal`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import REPO_ROOT  # also puts the project on the path

from sandbox import airflow_env  # noqa: E402

airflow_env.apply("benchmark")


def sandbox_config():
    from sandbox.config import scratch_config

    return scratch_config("cutover-bench-", 3000)


def gate_detection_runs(sandbox, runs: int) -> list[dict]:
    from cutover_kit.hooks.haproxy import HAProxyHook
    from cutover_kit.plan import load_plan
    from cutover_kit.triggers.slo_gate import SLOGateTrigger
    from sandbox.faults import FaultController

    plan = load_plan("rehearsal", {"bake_seconds": 30, "step_timeout_seconds": 60}).to_dict()
    faults = FaultController(sandbox.config)
    samples = []
    from cutover_kit.flags.model import FlagState
    from cutover_kit.actions.flags import apply_everywhere
    from cutover_kit.hooks.flags import flag_store
    from cutover_kit.hooks.levers import app_reports

    for _ in range(runs):
        # As the DAG's step does: green's own code serves the step (the reflex puts flags back on Rails).
        apply_everywhere(FlagState.for_step(25), "file", flag_store, app_reports)
        HAProxyHook().set_green_percent(25)
        started = time.time()
        trigger = SLOGateTrigger(
            step_label="25 %", plan=plan, bake_seconds=30, step_timeout_seconds=60,
            gate_started_at=started, weights_set_at=started, haproxy_conn_id="haproxy_default",
        )
        onset: dict[str, float] = {}

        def inject_later():
            time.sleep(12)  # the gate has judged healthy windows by then
            faults.inject("green", "errors", error_fraction=0.2)
            onset["at"] = time.time()

        injector = threading.Thread(target=inject_later)
        injector.start()

        async def first_event():
            async for event in trigger.run():
                return event.payload

        event = asyncio.run(first_event())
        injector.join()
        faults.clear("green")
        samples.append({
            "status": event["status"],
            "detection_seconds": event["decided_at"] - onset["at"],
            "rollback_seconds": event["traffic_restored_at"] - event["decided_at"],
            "flags_rollback_seconds": event["flags_restored_at"] - event["decided_at"],
            "line": event["line"],
        })
        print(f"  gate run: {samples[-1]['detection_seconds']:.2f} s to detect, "
              f"{samples[-1]['rollback_seconds'] * 1000:.1f} ms to restore: {event['line'][:90]}")
        time.sleep(11)  # let the error window age out of the next run's baseline
    return samples


def weight_change_run(sandbox) -> dict:
    from cutover_kit.hooks.haproxy import HAProxyHook
    from sandbox.traffic import TrafficGenerator, report

    router = HAProxyHook()
    traffic = TrafficGenerator(sandbox.config.router_url, rps=60, max_seconds=120, seed=11)
    traffic.start()
    time.sleep(2)
    changes = 0
    for _ in range(9):
        for percent in (5, 25, 50, 100, 50, 25, 5, 0):
            router.set_green_percent(percent)
            changes += 1
            time.sleep(0.3)
    traffic.stop()
    outcome = report(traffic.ledger, sandbox.config.app_dsn(), [])
    return {"weight_changes": changes, "requests": outcome["total"], "failed": outcome["failed"],
            "writes_acknowledged": outcome["writes_acknowledged"], "writes_lost": outcome["writes_lost"]}


def parse_times(runs: int) -> dict[str, float]:
    probe = """
import sys, time, importlib.util
import airflow.sdk, airflow.sdk.exceptions
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(time.perf_counter() - start)
"""
    medians = {}
    for dag_file in sorted((REPO_ROOT / "dags").glob("*.py")):
        times = [float(subprocess.run([sys.executable, "-c", probe, str(dag_file)], capture_output=True, text=True,
                                      check=True, cwd=REPO_ROOT).stdout.strip().splitlines()[-1]) for _ in range(runs)]
        medians[dag_file.name] = statistics.median(times)
    return medians


def rehearsal_wall_times(runs: int) -> list[float]:
    times = []
    for index in range(runs):
        started = time.perf_counter()
        result_path = Path(tempfile.gettempdir()) / f"bench-happy-{index}.json"
        subprocess.run([sys.executable, "-m", "sandbox.rehearsal", "--scenario", "happy", "--result", str(result_path)],
                       cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=f"{REPO_ROOT}:{REPO_ROOT / 'plugins'}"))
        times.append(time.perf_counter() - started)
        print(f"  happy rehearsal {index + 1}: {times[-1]:.0f} s, outcome {json.loads(result_path.read_text())['outcome']}")
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rehearsals", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results.json")
    args = parser.parse_args()

    from sandbox.launcher import Sandbox
    from sandbox.traffic import TrafficGenerator

    results: dict = {"machine": f"{platform.node()} {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
                     "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    print("DAG parse times ...")
    results["dag_parse_seconds_median"] = parse_times(args.runs)

    sandbox = Sandbox(sandbox_config())
    try:
        sandbox.up()
        for conn_id, connection in sandbox.connections().items():
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
        print("Weight changes under load ...")
        results["weight_changes_under_load"] = weight_change_run(sandbox)
        print("Detection and rollback ...")
        traffic = TrafficGenerator(sandbox.config.router_url, rps=40, max_seconds=60 * args.runs + 60, seed=5)
        traffic.start()
        samples = gate_detection_runs(sandbox, args.runs)
        traffic.stop()
        results["gate_runs"] = samples
        results["detection_seconds_median"] = statistics.median(s["detection_seconds"] for s in samples)
        results["rollback_seconds_median"] = statistics.median(s["rollback_seconds"] for s in samples)
    finally:
        sandbox.down()

    if args.rehearsals:
        print("Happy rehearsals ...")
        walls = rehearsal_wall_times(args.rehearsals)
        results["happy_rehearsal_wall_seconds"] = walls
        results["happy_rehearsal_wall_seconds_median"] = statistics.median(walls)

    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "gate_runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
