"""Benchmark: the cost of a cohort map update in HAProxy, and of routing by user per request.

    python -m benchmarks.cohort_map [--runs 7] [--sizes 10000 100000] [--json benchmarks/cohort_map.json]

Against the real HAProxy 2.6 from the sandbox's template (sandbox/standalone_router.py: two minimal
color apps behind it, routing by user switched on), for each map size:

- ``replace_seconds``: HAProxyRuntimeRouter.replace_cohort_map, the whole verified update the
  cutover would run: prepare map, the entries in ~12 kB payloads, commit (atomic swap), then
  ``show map`` read back and compared entry by entry. Each run swaps in a different map (the
  cohort of every entry alternates), so no run is a no-op;
- ``read_back_seconds``: the read back alone (``show map`` + parse + compare), so the fill and
  commit cost is the difference;
- ``request_ms_full_map`` / ``request_ms_empty_map``: latency of a request routed by user (cohort
  lookup + crc32 bucket) through HAProxy to a color app, on one keep-alive connection, with the
  map at that size and with it empty, measured in alternating rounds (the map swapped between
  them) so both see the same machine load; each is the median of the rounds' medians. It shows
  whether the per-request lookup grows with the number of members.

- ``member_add_ms`` / ``member_move_ms`` / ``member_remove_ms``: one verified single-member change
  with the map at that size (set_cohort_member for a new user: `add map`; for a member, to
  another cohort: `set map`; remove_cohort_member: `del map`), each read back with `get map`.

Each update figure is the median of --runs runs. The machine's load average is printed before and
after: on 2 shared cores it moves these figures more than the map does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import REPO_ROOT  # also puts the project on the path


def entries_for(size: int, run: int) -> dict[str, str]:
    cohorts = ("beta", "internal") if run % 2 else ("internal", "beta")
    return {f"user-{n:07d}": cohorts[n % 2] for n in range(size)}


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def request_latency_ms(router, users: list[str], requests: int) -> float:
    from cutover_kit.cohorts import USER_ID_HEADER

    connection = router.connection()
    samples = []
    try:
        for index in range(requests):
            started = time.perf_counter()
            router.color_for({USER_ID_HEADER: users[index % len(users)]}, connection)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return round(statistics.median(samples), 3)


def measure_size(router, size: int, runs: int, requests: int) -> dict[str, object]:
    replace, read_back, payloads = [], [], 0
    for run in range(runs):
        entries = entries_for(size, run)
        started = time.perf_counter()
        update = router.runtime.replace_cohort_map(entries)
        replace.append(time.perf_counter() - started)
        payloads = update.payloads
        started = time.perf_counter()
        if router.runtime.read_cohort_map() != entries:
            raise RuntimeError(f"map of {size} entries did not read back")
        read_back.append(time.perf_counter() - started)
    # Half members, half not: both the map hit and the hash path are exercised.
    users = [f"user-{n:07d}" for n in range(0, size, max(1, size // 500))][:500] + [f"guest-{n}" for n in range(500)]
    router.runtime.replace_cohort_map(entries_for(size, 0))
    added, moved, removed = [], [], []
    for n in range(max(runs, 10)):
        new_user, member = f"late-{n}", f"user-{n * 7:07d}"
        added.append(timed(router.runtime.set_cohort_member, new_user, "beta"))
        moved.append(timed(router.runtime.set_cohort_member, member, "early_adopters"))
        removed.append(timed(router.runtime.remove_cohort_member, new_user))
    full_map, empty_map = [], []
    for run in range(runs):
        router.runtime.replace_cohort_map(entries_for(size, run))
        full_map.append(request_latency_ms(router, users, requests))
        router.runtime.clear_cohort_map()
        empty_map.append(request_latency_ms(router, users, requests))
    return {
        "entries": size,
        "payloads": payloads,
        "median_replace_seconds": round(statistics.median(replace), 4),
        "max_replace_seconds": round(max(replace), 4),
        "median_read_back_seconds": round(statistics.median(read_back), 4),
        "member_add_ms": round(statistics.median(added) * 1000, 3),
        "member_move_ms": round(statistics.median(moved) * 1000, 3),
        "member_remove_ms": round(statistics.median(removed) * 1000, 3),
        "request_ms_full_map": round(statistics.median(full_map), 3),
        "request_ms_empty_map": round(statistics.median(empty_map), 3),
        "replace_samples": [round(sample, 4) for sample in replace],
    }


def main(argv: list[str] | None = None) -> int:
    from sandbox.standalone_router import standalone_router

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--requests", type=int, default=500, help="requests per latency round")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "cohort_map.json")
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs must be >= 3 (the figures are medians)")

    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} on {os.cpu_count()} cores",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="cutover-bench-cohorts-") as work_dir, \
            standalone_router(Path(work_dir)) as router:
        router.runtime.set_user_routing(True)
        router.runtime.set_green_percent(25)
        results = []
        for size in args.sizes:
            results.append(measure_size(router, size, args.runs, args.requests))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "replace_samples"}), flush=True)
        router.runtime.clear_cohort_map()
    load_after = os.getloadavg()
    haproxy_version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    result = {
        "what": "cohort map update through the HAProxy runtime API (prepare, payloads, commit, show map read back), "
                "and per-request latency of routing by user",
        "runs": args.runs,
        "sizes": results,
        "haproxy": haproxy_version,
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in load_after],
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "sizes"}, indent=2))
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
