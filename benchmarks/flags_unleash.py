"""Unleash backend: flag flip -> every app's SDK serves Rails (target <= 3 s), median of N flips.

    python -m benchmarks.flags_unleash [--flips 12] [--apps 2] [--port-offset 3400] [--json out.json]

Starts a private sandbox with SANDBOX_FLAG_BACKEND=unleash (unleash-server 6.x on the sandbox
PostgreSQL) and one UnleashEvaluator per app (the apps' SDK set-up: UnleashClient polling every
1 s, metrics off), each with its own poller thread. Each flip:

1. puts every feature on (FlagState.for_step(100)) and waits until every evaluator sees it;
2. waits a random 0-1.5 s, so flips do not line up with the pollers' 1 s period;
3. the decision: UnleashFlagStore.write(FlagState.rails()) through the admin API, then
   verification by read-back (apply_flags), as the rollback does;
4. meanwhile polls every evaluator every 10 ms until all of them answer Rails for every feature.

Reported per flip: admin-API write, write + read-back, and decision -> every evaluator on Rails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any


from cutover_kit.flags.model import FEATURES, FlagState, apply_flags  # noqa: E402
from cutover_kit.flags.unleash_store import UnleashFlagStore  # noqa: E402
from sandbox.config import SandboxConfig, scratch_config  # noqa: E402
from sandbox.flags_unleash import UnleashEvaluator  # noqa: E402
from sandbox.launcher import Sandbox  # noqa: E402

POLL_SECONDS = 0.01
TIMEOUT_SECONDS = 15.0


def sandbox_config(port_offset: int) -> SandboxConfig:
    return scratch_config("cutover-bench-unleash-", port_offset, SANDBOX_FLAG_BACKEND="unleash", SANDBOX_ORDERS="1000")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def all_see(evaluators: list[UnleashEvaluator], on: bool) -> bool:
    return all(evaluator.feature_on(name, 7, via_router=True) == on for evaluator in evaluators for name in FEATURES)


def wait_until(evaluators: list[UnleashEvaluator], on: bool) -> float:
    started = time.monotonic()
    while not all_see(evaluators, on):
        if time.monotonic() - started > TIMEOUT_SECONDS:
            raise RuntimeError(f"evaluators did not see features {'on' if on else 'off'} within {TIMEOUT_SECONDS:g} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - started


def flip(store: UnleashFlagStore, evaluators: list[UnleashEvaluator], rng: random.Random) -> dict[str, float]:
    store.write(FlagState.for_step(100))
    to_green = wait_until(evaluators, on=True)
    time.sleep(rng.uniform(0, 1.5))
    marks: dict[str, float] = {}

    def rollback() -> None:  # in a thread: the apps may see Rails before the read-back ends
        store.write(FlagState.rails())
        marks["written"] = time.monotonic()
        apply_flags(store, FlagState.rails())  # the rollback's verification: write again (no-op) + read back
        marks["verified"] = time.monotonic()

    decided = time.monotonic()
    writer = threading.Thread(target=rollback)
    writer.start()
    wait_until(evaluators, on=False)
    done = time.monotonic()
    writer.join(TIMEOUT_SECONDS)
    if "verified" not in marks:
        raise RuntimeError("the rollback write did not finish")
    return {"write_s": round(marks["written"] - decided, 3), "write_and_verify_s": round(marks["verified"] - decided, 3),
            "flip_to_rails_s": round(done - decided, 3), "flip_to_green_s": round(to_green, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flips", type=int, default=12)
    parser.add_argument("--apps", type=int, default=2, help="evaluators, one per app (blue, green)")
    parser.add_argument("--port-offset", type=int, default=3400)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.flips < 1 or args.apps < 1:
        parser.error("--flips and --apps must be >= 1")

    config = sandbox_config(args.port_offset)
    sandbox = Sandbox(config)
    evaluators: list[UnleashEvaluator] = []
    try:
        sandbox.up()
        full_state = json.loads(config.state_file.read_text())
        state = full_state["unleash"]
        server = {"startup_s": {key: full_state["startup_seconds"][key] for key in ("unleash_spawn", "unleash")},
                  "rss_mb_at_start": rss_mb(full_state["components"]["unleash"]["pid"])}
        store = UnleashFlagStore(state["url"], state["admin_token"], state["project"], state["environment"])
        apply_flags(store, FlagState.rails())
        env = {"SANDBOX_UNLEASH_URL": state["url"], "SANDBOX_UNLEASH_CLIENT_TOKEN": state["client_token"],
               "SANDBOX_DIR": str(config.state_dir)}
        evaluators = [UnleashEvaluator.from_env(env, app_name=f"bench-app-{index}") for index in range(args.apps)]
        rng = random.Random(4)
        samples = []
        for number in range(1, args.flips + 1):
            sample = flip(store, evaluators, rng)
            samples.append(sample)
            print(f"flip {number}: {json.dumps(sample)}", flush=True)
        started = time.perf_counter()
        for user in range(10_000):
            evaluators[0].rollout_on(user, via_router=False)
        evaluation_us = (time.perf_counter() - started) / 10_000 * 1e6
        server["rss_mb_after_flips"] = rss_mb(full_state["components"]["unleash"]["pid"])
    finally:
        for evaluator in evaluators:
            evaluator.close()
        sandbox.down()
        shutil.rmtree(config.state_dir, ignore_errors=True)

    def summary(key: str) -> dict[str, Any]:
        values = [sample[key] for sample in samples]
        return {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}

    results = {
        "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "flips": args.flips, "apps": args.apps, "unleash_server": server,
        "sdk_evaluation_us": round(evaluation_us, 1),
        **{key: summary(key) for key in ("flip_to_rails_s", "write_s", "write_and_verify_s", "flip_to_green_s")},
        "samples": samples,
    }
    print(json.dumps({key: value for key, value in results.items() if key != "samples"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
