"""Emergency rollback under a running scheduler: trigger -> 100 % blue verified, and the whole run.

    python -m benchmarks.emergency_rollback [--runs 5] [--port-offset 4600] [--json out.json]

Starts the sandbox, traffic through the router and `airflow standalone` (sandbox.airflow_stack);
then, per run: green at 50 % and no stop latched, trigger `emergency_rollback` over REST, wait for
the run. Reports, per run, trigger (the run's queued_at) -> traffic verified on blue (the report
task's traffic_verified_seconds) and trigger -> run finished (smoke checks on blue included).
Target (issue 4): trigger -> 100 % blue verified <= 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from datetime import datetime
from pathlib import Path



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--port-offset", type=int, default=4600)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import redis

    from cutover_kit import connections
    from cutover_kit.hooks.cutover_state import EMERGENCY_STOP_KEY
    from cutover_kit.routing.haproxy_runtime import HAProxyRuntimeRouter
    from sandbox.airflow_stack import sandbox_under_airflow

    rows = []
    with sandbox_under_airflow("cutover-bench-emergency-", args.port_offset, ("emergency_rollback",),
                               traffic_rps=30, traffic_seconds=1800, seed=17) as (airflow, box):
        extra = box.connections()[connections.HAPROXY]["extra"]
        router = HAProxyRuntimeRouter(backend=extra["backend"], socket_path=extra["socket_path"])
        state = redis.Redis(host="127.0.0.1", port=box.config.redis_port)
        for run in range(args.runs):
            state.delete(EMERGENCY_STOP_KEY)
            router.set_green_percent(50)
            reply = airflow.trigger("emergency_rollback", {"reason": f"benchmark run {run + 1}"})
            reply.raise_for_status()
            run_id = reply.json()["dag_run_id"]
            finished = airflow.wait_for_run("emergency_rollback", run_id, timeout=300)
            report = airflow.xcom("emergency_rollback", run_id, "report")
            queued = datetime.fromisoformat(finished["queued_at"]).timestamp()
            ended = datetime.fromisoformat(finished["end_date"]).timestamp()
            row = {"run": run + 1, "state": finished["state"], "traffic_verified_seconds": report["traffic_verified_seconds"],
                   "run_seconds": round(ended - queued, 2), "green_percent_after": router.read_weights().green_percent}
            rows.append(row)
            print(json.dumps(row), flush=True)

    summary = {
        "runs": rows,
        "median_traffic_verified_seconds": statistics.median(r["traffic_verified_seconds"] for r in rows),
        "median_run_seconds": statistics.median(r["run_seconds"] for r in rows),
        "all_blue": all(r["green_percent_after"] == 0 and r["state"] == "success" for r in rows),
        "load_average": os.getloadavg(),
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if summary["all_blue"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
