"""Benchmark: the cost of one SLO-gate poll measuring the whole "monitor closely" list.

    python -m benchmarks.gate_poll_cost [--polls 30] [--percent 50] [--rps 40] [--port-offset N] [--json OUT]

Starts a sandbox of its own (scratch state directory, every port shifted by ``--port-offset``,
default $SANDBOX_TEST_PORT_OFFSET or 1000), sends ``--rps`` requests per second through the router
with green at ``--percent`` and its flags on the TypeScript side (as a traffic step sets them), and
times SLOGateTrigger._judge_once as the trigger's poll loop calls it: both colors' SLO measures,
p50/p95/p99, jobs, WebSockets, memory, CPU, forwarded requests, per-route latency (APM) and the
apps' pg_stat_statements, then the judge, with every whole-list limit of the plan set (so every
rule runs). The integrity probe and the heartbeat are timed by their own benchmarks. Reports the
median, p90 and max of ``--polls`` polls (after two warm-up polls), and beside each the poll as it
was before the whole list (both colors' 5xx and latency, one color after the other) under the
same load, then takes the sandbox down.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

from benchmarks import REPO_ROOT  # noqa: F401 - puts the project on the path

from cutover_kit.plan import load_plan  # noqa: E402
from sandbox.config import scratch_config  # noqa: E402
from sandbox.launcher import Sandbox  # noqa: E402
from sandbox.traffic import TrafficGenerator  # noqa: E402

#: Every whole-list limit set, loose enough that a healthy green passes: the cost of judging them all.
ALL_LIMITS = {
    "min_throughput_ratio_vs_blue": 0.5, "min_job_rate_ratio_vs_blue": 0.5, "max_job_failure_ratio_delta_vs_blue": 0.05,
    "min_websocket_ratio_vs_blue": 0.5, "max_memory_ratio_vs_blue": 2.0, "max_cpu_per_request_ratio_vs_blue": 3.0,
    "max_db_statement_time_ratio_vs_blue": 3.0,
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=30)
    parser.add_argument("--percent", type=int, default=50)
    parser.add_argument("--rps", type=float, default=40)
    parser.add_argument("--port-offset", type=int, default=int(os.environ.get("SANDBOX_TEST_PORT_OFFSET", "1000")))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    box = Sandbox(scratch_config("cutover-bench-gate-poll-", args.port_offset, SANDBOX_READY_TIMEOUT="30"))
    try:
        box.up()
        result = measure(box, args)
    finally:
        box.down()
        shutil.rmtree(box.config.state_dir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def measure(box: Sandbox, args: argparse.Namespace) -> dict:
    for conn_id, connection in box.connections().items():
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
    from cutover_kit.flags.flagd_file import FlagdFileStore
    from cutover_kit.flags.model import FlagState, apply_flags
    from cutover_kit.hooks.haproxy import HAProxyHook
    from cutover_kit.measure import measure_color
    from cutover_kit.slo import judge_window
    from cutover_kit.triggers.slo_gate import SLOGateTrigger

    plan = load_plan("rehearsal")
    plan = dataclasses.replace(plan, slo=dataclasses.replace(plan.slo, **ALL_LIMITS))
    apply_flags(FlagdFileStore(box.config.flags_file), FlagState.for_step(args.percent))
    HAProxyHook().set_green_percent(args.percent)
    generator = TrafficGenerator(box.config.router_url, rps=args.rps, max_seconds=args.polls * 2 + 60, seed=7).start()
    try:
        time.sleep(plan.window_seconds + 3)  # a full judging window of traffic at this split
        now = time.time()
        trigger = SLOGateTrigger(step_label=f"{args.percent} %", plan=plan.to_dict(), bake_seconds=3600,
                                 step_timeout_seconds=7200, gate_started_at=now, weights_set_at=now - 60,
                                 green_percent=float(args.percent), postgres_conn_id="postgres_default")
        source = trigger._metrics_source()
        timings, before, lines = [], [], []

        async def polls() -> None:
            for index in range(args.polls + 2):
                started = time.perf_counter()
                judgement, measurements = await trigger._judge_once(source, plan, None)
                elapsed = time.perf_counter() - started
                # The poll as it was before the whole list (5xx and latency only, colors one after
                # the other), timed beside it so both see the same load on the machine.
                started = time.perf_counter()
                quantiles = tuple(plan.slo.quantiles)
                green = measure_color(source, "green", plan.window_seconds, quantiles, plan.metrics, plan.slo.confidence_z)
                blue = measure_color(source, "blue", plan.window_seconds, quantiles, plan.metrics, plan.slo.confidence_z)
                judge_window(green, blue, plan.slo, min_requests=plan.min_requests, window_seconds=plan.window_seconds)
                slo_only = time.perf_counter() - started
                if index >= 2:  # the first polls open connections and the statement window
                    timings.append(elapsed)
                    before.append(slo_only)
                    lines.append(f"{judgement.verdict.value}: {judgement.reason}")
                await asyncio.sleep(plan.poll_interval_seconds)
        asyncio.run(polls())
        trigger._whole_list_meter.close()
    finally:
        generator.stop()
    return {
        "polls": len(timings),
        "median_ms": round(statistics.median(timings) * 1000, 1),
        "p90_ms": round(percentile(timings, 0.9) * 1000, 1),
        "max_ms": round(max(timings) * 1000, 1),
        "slo_only_median_ms": round(statistics.median(before) * 1000, 1),
        "slo_only_p90_ms": round(percentile(before, 0.9) * 1000, 1),
        "green_percent": args.percent,
        "rps": args.rps,
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "last_line": lines[-1],
    }


if __name__ == "__main__":
    raise SystemExit(main())
