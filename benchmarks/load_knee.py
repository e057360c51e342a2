"""Benchmark: stage 6's pieces on the real apps, with the rehearsal plan's `load_test` section.

    python -m benchmarks.load_knee [--runs 3] [--orders 20000] [--under-capacity] [--json benchmarks/load_knee.json]

One sandbox (ports: defaults + SANDBOX_BENCH_PORT_OFFSET, default 3600), one verified-shape
backup, then what stage 6's tasks do, timed, without Airflow's per-task overhead:

- ``start``: the database copy (make_stage_database: full restore + expand + backfill + ANALYZE)
  and both stage instances up through their Connections' commands;
- ``load`` per run: Locust against blue then green, each with the plan's steps, stress step and
  recovery (one run per color), the knee, the stress failure mode, the recovery, the capacity
  verdict, and the bottleneck hints (Prometheus CPU, pg_stat_activity, pg_stat_statements);
- ``stop``: both instances down and the copy dropped.

Figures: each color's knee rps, p95 at the planned peak, the stress outcome, the recovery time,
and the medians over the runs. With ``--under-capacity`` one more run puts green's stage instance
under the `green-under-capacity` faults (one request at a time, 100 ms each) to show how an
undersized green fails and whether it recovers. ``--keep DIR`` copies each run's Locust CSVs there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

from benchmarks import REPO_ROOT  # also puts the project on the path

from sandbox import airflow_env  # noqa: E402

airflow_env.apply("benchmark")

COLORS = ("blue", "green")


def sandbox_config(orders: int):
    from sandbox.config import scratch_config

    return scratch_config("cutover-bench-load-", int(os.environ.get("SANDBOX_BENCH_PORT_OFFSET", "3600")),
                          SANDBOX_ORDERS=str(orders))


def one_run(settings, urls, instances, database, ids, out_dir: Path) -> dict:
    from cutover_kit.load.capacity import load_test_summary
    from cutover_kit.load.knee import LoadSLO, find_knee
    from cutover_kit.load.runner import run_locust
    from cutover_kit.stages import load_testing

    slo = LoadSLO(settings["max_p95_ms"], settings["max_error_ratio"])
    runs, knees, samplers = {}, {}, {}
    started = time.monotonic()
    for color in COLORS:
        profile = load_testing.profile_for(settings, color, urls[color], *ids)
        with load_testing.connection_sampler_for(instances[color], database) as samplers[color]:
            runs[color] = run_locust(profile, color, out_dir)
        knees[color] = find_knee(runs[color].steps, slo)
    stress = load_testing.stress_blocks_of(runs, knees, slo, settings["max_requests"])
    summary = load_test_summary({c: runs[c].steps for c in COLORS}, knees, load_testing.capacity_plan_of(settings), stress)
    load_seconds = time.monotonic() - started
    time.sleep(1.5)  # Prometheus' last scrape of the run
    for color in COLORS:
        summary[color]["bottlenecks"] = load_testing.bottleneck_hints_for(color, runs[color], knees[color], instances[color], database,
                                                                  samplers[color], settings["step_seconds"])
        summary[color]["locust_seconds"] = runs[color].seconds
        summary[color]["steps"] = [
            {"users": s.users, "rate_rps": s.rate_rps, "p95_ms": s.p95_ms, "error_ratio": s.error_ratio}
            for s in runs[color].steps]
        summary[color]["recovery_per_second"] = [s.as_dict() for s in runs[color].recovery]
    summary["load_seconds"] = round(load_seconds, 1)
    return summary


def print_run(label: str, summary: dict) -> None:
    print(f"{label}: verdict {summary['verdict']} ({summary['reason']}); load {summary['load_seconds']} s", flush=True)
    for color in COLORS:
        c = summary[color]
        print(f"  {color}: knee {c['knee_rps']:g} rps (p95 {c['p95_at_knee_ms']} ms, saturated {c['saturated']}),"
              f" p95 at peak {c['p95_at_peak_ms']} ms; stress {c['stress']['description']}; {c['recovery']['description']}",
              flush=True)
        for hint in c["bottlenecks"]["hints"]:
            print(f"    hint {hint}", flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def main(argv: list[str] | None = None) -> int:
    import requests

    from cutover_kit.db.backup import backup_database
    from cutover_kit.db.restore import drop_scratch
    from cutover_kit.load.instances import instance_from_connection, start_instance, stop_instance
    from cutover_kit.plan import load_plan
    from cutover_kit.stages import load_testing
    from sandbox.faults import fault_body
    from sandbox.launcher import Sandbox

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--under-capacity", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="copy each run's Locust CSVs into this folder")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "load_knee.json")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")

    settings = load_testing.load_settings(load_plan("rehearsal").load_test)
    config = sandbox_config(args.orders)
    sandbox = Sandbox(config)
    results, timings = [], {}
    try:
        sandbox.up()
        for conn_id, connection in sandbox.connections().items():
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
        work = Path(config.state_dir) / "bench"
        record = backup_database(sandbox.dsn(), work / "backup").as_dict()
        connections = sandbox.connections()
        instances = {c: instance_from_connection(c, f"app_{c}_loadtest", connections[f"app_{c}_loadtest"]["host"],
                                                 connections[f"app_{c}_loadtest"]["port"], None,
                                                 connections[f"app_{c}_loadtest"]["extra"]) for c in COLORS}
        started = time.monotonic()
        copy = load_testing.make_stage_database(record, "postgres_default", load_testing.STAGE_DB)
        up = {c: start_instance(instances[c], copy["database"]) for c in COLORS}
        timings["start_seconds"] = round(time.monotonic() - started, 1)
        timings["copy_seconds"] = copy["seconds"]
        timings["instances_up_seconds"] = {c: round((up[c]["start_seconds"] or 0) + up[c]["ready_seconds"], 1) for c in COLORS}
        urls = {c: up[c]["url"] for c in COLORS}
        ids = load_testing.seeded_ids(record)
        for index in range(args.runs):
            out = work / f"run{index}"
            summary = one_run(settings, urls, instances, copy["database"], ids, out)
            print_run(f"run {index + 1}/{args.runs} (load average {os.getloadavg()[0]:.1f})", summary)
            summary["load_average"] = round(os.getloadavg()[0], 1)
            results.append(summary)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for color in COLORS:
                    shutil.copy(out / f"{color}_stats_history.csv", args.keep / f"run{index}_{color}_stats_history.csv")
        under = None
        if args.under_capacity:
            for body in (fault_body("capacity_limit", None, None, 1), fault_body("latency", None, 100)):
                requests.post(f"{urls['green']}/__fault", json=body, timeout=5).raise_for_status()
            out = work / "under-capacity"
            under = one_run(settings, urls, instances, copy["database"], ids, out)
            print_run("green under capacity (max_concurrent 1, +100 ms)", under)
            requests.delete(f"{urls['green']}/__fault", timeout=5)
            if args.keep:
                shutil.copy(out / "green_stats_history.csv", args.keep / "under_capacity_green_stats_history.csv")
        started = time.monotonic()
        for color in reversed(COLORS):
            stop_instance(instances[color])
        drop_scratch(sandbox.dsn(), copy["database"])
        timings["stop_seconds"] = round(time.monotonic() - started, 1)
    finally:
        sandbox.down()
        shutil.rmtree(config.state_dir, ignore_errors=True)

    medians = {
        color: {
            "knee_rps": median([r[color]["knee_rps"] for r in results]),
            "p95_at_peak_ms": median([r[color]["p95_at_peak_ms"] for r in results]),
            "stress_p95_ms": median([r[color]["stress"]["p95_ms"] for r in results]),
            "stress_rate_rps": median([r[color]["stress"]["rate_rps"] for r in results]),
            "stress_error_ratio": median([r[color]["stress"]["error_ratio"] for r in results]),
            "failure_modes": [r[color]["stress"]["failure_mode"] for r in results],
            "recovered": [r[color]["recovered"] for r in results],
            "recovery_seconds": median([r[color]["recovery_seconds"] for r in results]),
            "cpu_peak_cores": median([r[color]["bottlenecks"]["cpu"].get("peak_cores") for r in results]),
            "generator_cores_at_peak": median([r[color]["bottlenecks"].get("generator", {}).get("cores_at_peak") for r in results]),
            "generator_cpu_ms_per_request": median([r[color]["bottlenecks"].get("generator", {}).get("cpu_ms_per_request")
                                                    for r in results]),
            "locust_seconds": median([r[color]["locust_seconds"] for r in results]),
        } for color in COLORS
    }
    medians["load_seconds"] = median([r["load_seconds"] for r in results])
    output = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "orders": args.orders,
              "plan": "rehearsal", "load_test": settings, "timings": timings, "medians": medians,
              "runs": results, "under_capacity": under}
    args.json.write_text(json.dumps(output, indent=2, default=str) + "\n")
    print(json.dumps({"timings": timings, "medians": medians}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
