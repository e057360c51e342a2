"""Bounded, paced HTTP traffic against the router, with a ledger of every request.

The ledger is the ground truth of a rehearsal: which requests failed, which color served them,
whether the failure was injected on purpose, and which writes the service acknowledged (so
:func:`report` can prove none of them was lost).

Pacing is open-loop (request *i* is due at ``start + i / rps``) so a slow color does not
quietly lower the offered load; a request more than ``max_lag_seconds`` late is skipped and
counted instead of being fired in a burst.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import requests

ROUTE_USER = "/api/users/{id}"
ROUTE_USER_ORDERS = "/api/users/{id}/orders"
ROUTE_ORDER = "/api/orders/{id}"
ROUTE_CREATE_ORDER = "/api/orders"
CONNECT_TIMEOUT = 1.0
MAX_REQUESTS_HARD_CAP = 1_000_000


class TrafficError(RuntimeError):
    """The generator cannot run (e.g. no valid user ids could be learned)."""


@dataclass(frozen=True)
class PlannedRequest:
    method: str
    route: str
    path: str
    body: dict[str, int] | None = None
    user_id: int | None = None  # sent as X-User-Id: flags are evaluated per user (sticky)


class TrafficGenerator:
    """Paced worker threads, each with its own keep-alive ``requests.Session``.

    Bounded twice: stops after ``max_seconds`` or ``max_requests`` sent, whichever comes first.
    ``read_write_mix`` is the share of reads (0.7 = 70 % reads, 30 % order writes).
    """

    def __init__(
        self,
        base_url: str,
        rps: float = 40,
        max_seconds: float = 600,
        max_requests: int | None = None,
        read_write_mix: float = 0.7,
        seed: int | None = None,
        user_ids: Sequence[int] | None = None,
        workers: int | None = None,
        timeout_seconds: float = 5.0,
        max_lag_seconds: float = 1.0,
    ) -> None:
        if rps <= 0 or max_seconds <= 0:
            raise ValueError(f"rps and max_seconds must be > 0, got rps={rps}, max_seconds={max_seconds}")
        if not 0 <= read_write_mix <= 1:
            raise ValueError(f"read_write_mix is the share of reads, 0..1; got {read_write_mix}")
        self.base_url = base_url.rstrip("/")
        self.rps = float(rps)
        self.max_seconds = float(max_seconds)
        self.max_requests = min(max_requests or math.ceil(rps * max_seconds), MAX_REQUESTS_HARD_CAP)
        self.read_write_mix = read_write_mix
        self.timeout_seconds = timeout_seconds
        self.max_lag_seconds = max_lag_seconds
        # Enough threads that ~200 ms responses still keep up with the rate, but "a few".
        self.workers = workers or max(2, min(16, math.ceil(self.rps / 8)))
        self._random = random.Random(seed)
        self._user_ids = list(user_ids) if user_ids else []
        self._order_ids: list[int] = []
        self._ledger: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._issued = 0
        self.skipped = 0
        self.started_at: float | None = None
        self._t0 = 0.0

    # ------------------------------------------------------------------------- lifecycle

    def start(self) -> TrafficGenerator:
        if self._threads:
            raise TrafficError("generator already started; create a new one for another run")
        if not self._user_ids:
            self._user_ids = self.learn_user_ids()
        self.started_at = time.time()
        self._t0 = time.monotonic()
        self._threads = [threading.Thread(target=self._worker, name=f"traffic-{i}", daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Stop issuing requests, wait for in-flight ones, return the ledger."""
        self._stop.set()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> list[dict[str, Any]]:
        """Wait until the run ends by itself (time or count bound); return the ledger."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.ledger

    def run(self) -> list[dict[str, Any]]:
        return self.start().join()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    @property
    def ledger(self) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(self._ledger, key=lambda entry: entry["t"])

    def dump_jsonl(self, path: str | Path) -> Path:
        """Write the ledger so far, one JSON object per request."""
        return dump_jsonl(self.ledger, path)

    # ------------------------------------------------------------------------- setup

    def learn_user_ids(self, wanted: int = 20, probe_up_to: int = 200) -> list[int]:
        """Find existing users by GETting ids 1, 2, ... until `wanted` answered 200."""
        found: list[int] = []
        statuses: dict[int | str, int] = {}
        with requests.Session() as session:
            for user_id in range(1, probe_up_to + 1):
                try:
                    status = session.get(f"{self.base_url}/api/users/{user_id}", timeout=self.timeout_seconds).status_code
                except requests.RequestException as error:
                    status = type(error).__name__
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    found.append(user_id)
                    if len(found) >= wanted:
                        break
        if not found:
            raise TrafficError(f"no user found at {self.base_url}/api/users/1..{probe_up_to} "
                               f"(answers: {statuses}); is the sandbox up and seeded?")
        return found

    # ------------------------------------------------------------------------- workers

    def _next_slot(self) -> tuple[float, PlannedRequest] | None:
        """Reserve the next request slot (due time + what to send), or None when done."""
        with self._lock:
            if self._stop.is_set() or self._issued >= self.max_requests:
                return None
            due = self._t0 + self._issued / self.rps
            if due - self._t0 >= self.max_seconds:
                return None
            self._issued += 1
            return due, self._plan()

    def _plan(self) -> PlannedRequest:
        # Called under the lock: one RNG drawn in slot order keeps a seeded run's plan repeatable.
        rng = self._random
        user_id = rng.choice(self._user_ids)
        if rng.random() >= self.read_write_mix:
            body = {"user_id": user_id, "amount_cents": rng.randint(100, 50_000)}
            return PlannedRequest("POST", ROUTE_CREATE_ORDER, "/api/orders", body, user_id)
        kind = rng.random()
        if kind < 0.3 and self._order_ids:
            order_id = rng.choice(self._order_ids)
            return PlannedRequest("GET", ROUTE_ORDER, f"/api/orders/{order_id}", None, user_id)
        if kind < 0.6:
            return PlannedRequest("GET", ROUTE_USER_ORDERS, f"/api/users/{user_id}/orders", None, user_id)
        return PlannedRequest("GET", ROUTE_USER, f"/api/users/{user_id}", None, user_id)

    def _worker(self) -> None:
        with requests.Session() as session:
            while (slot := self._next_slot()) is not None:
                due, planned = slot
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                if -delay > self.max_lag_seconds:
                    with self._lock:
                        self.skipped += 1
                    continue
                entry = self._send(session, planned)
                with self._lock:
                    self._ledger.append(entry)
                    if entry["write_id"] is not None:
                        self._order_ids.append(entry["write_id"])

    def _send(self, session: requests.Session, planned: PlannedRequest) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "t": time.time(), "method": planned.method, "route": planned.route, "status": None,
            "color": None, "served_by": None, "injected": False, "error": None, "write_id": None,
            "duration_s": None,
        }
        started = time.monotonic()
        try:
            headers = {"X-User-Id": str(planned.user_id)} if planned.user_id is not None else None
            response = session.request(planned.method, self.base_url + planned.path, json=planned.body,
                                       headers=headers, timeout=(CONNECT_TIMEOUT, self.timeout_seconds))
        except requests.RequestException as error:
            entry["error"] = f"{type(error).__name__}: {error}"
        else:
            self._fill_from_response(entry, planned, response)
        entry["duration_s"] = round(time.monotonic() - started, 6)
        return entry

    @staticmethod
    def _fill_from_response(entry: dict[str, Any], planned: PlannedRequest, response: requests.Response) -> None:
        entry["status"] = response.status_code
        # Which implementation's code answered: "rails" (blue, or green forwarding to blue because a
        # flag said so) or "typescript" (green's own code). Only present when an app answered.
        entry["served_by"] = response.headers.get("X-Served-By")
        # X-Backend-Server is set by HAProxy even on its own 502/503, so it names the color that
        # failed; X-App-Color only exists when the app itself answered.
        entry["color"] = response.headers.get("X-Backend-Server") or response.headers.get("X-App-Color")
        entry["injected"] = response.headers.get("X-Fault-Injected") == "1"
        if response.status_code >= 400:
            entry["error"] = response.text[:200]
        elif planned.method == "POST" and response.status_code == 201:
            try:
                entry["write_id"] = int(response.json()["id"])
            except (ValueError, KeyError, TypeError):
                entry["error"] = f"201 without an id: {response.text[:200]}"


# ----------------------------------------------------------------------------- ledger files


def dump_jsonl(ledger: Iterable[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        for entry in ledger:
            out.write(json.dumps(entry, separators=(",", ":")) + "\n")
    return path


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path) as source:
        return [json.loads(line) for line in source if line.strip()]


# ----------------------------------------------------------------------------- report


def is_failed(entry: dict[str, Any]) -> bool:
    return entry["status"] is None or entry["status"] >= 500


def is_injected_failure(entry: dict[str, Any], fault_windows: Sequence[dict[str, Any]]) -> bool:
    """A failure we caused on purpose: the app said so, or it died while its crash window was open."""
    if entry.get("injected"):
        return True
    if entry.get("served_by"):  # the app answered 5xx itself without the fault header: a real error
        return False
    started = entry["t"]
    finished = started + (entry.get("duration_s") or 0.0)
    for window in fault_windows:
        if window.get("kind") != "crash":
            continue
        if entry.get("color") not in (None, window["color"]):
            continue
        end = window.get("end")
        if finished >= window["start"] and (end is None or started <= end):
            return True
    return False


def report(ledger: Sequence[dict[str, Any]], dsn: str, fault_windows: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Summarise a ledger: failures split into injected vs not, and acknowledged writes lost."""
    windows = list(fault_windows or [])
    failed = [entry for entry in ledger if is_failed(entry)]
    injected = [entry for entry in failed if is_injected_failure(entry, windows)]
    acknowledged = sorted({entry["write_id"] for entry in ledger if entry.get("write_id") is not None})
    lost = missing_order_ids(dsn, acknowledged)
    lost_injected = injected_lost_writes(ledger, lost, windows)
    by_color: dict[str, int] = {}
    by_served_by: dict[str, int] = {}
    for entry in ledger:
        key = entry.get("color") or "unknown"
        by_color[key] = by_color.get(key, 0) + 1
        served = entry.get("served_by") or "none"  # none: no app answered (HAProxy error, connection failure)
        by_served_by[served] = by_served_by.get(served, 0) + 1
    return {
        "total": len(ledger),
        "failed": len(failed),
        "failed_injected": len(injected),
        "failed_not_injected": len(failed) - len(injected),
        "writes_acknowledged": len(acknowledged),
        "writes_lost": len(lost),
        "lost_write_ids": lost,
        # Lost on purpose: acknowledged by a color while its drop_writes fault was on.
        "writes_lost_injected": len(lost_injected),
        "writes_lost_not_injected": len(lost) - len(lost_injected),
        "by_color": by_color,
        "by_served_by": by_served_by,
        # The evidence for any non-injected failure, so a red rehearsal explains itself.
        "failed_not_injected_samples": [entry for entry in failed if entry not in injected][:5],
    }


def injected_lost_writes(ledger: Sequence[dict[str, Any]], lost: Sequence[int],
                         fault_windows: Sequence[dict[str, Any]]) -> list[int]:
    """The lost ids a drop_writes fault explains: acknowledged by that fault's color inside its window."""
    drops = [window for window in fault_windows if window.get("kind") == "drop_writes" and not window.get("error")]
    missing = set(lost)
    explained = []
    for entry in ledger:
        if entry.get("write_id") not in missing:
            continue
        for window in drops:
            end = window.get("end")
            if entry.get("color") == window["color"] and entry["t"] + (entry.get("duration_s") or 0.0) >= window["start"] \
                    and (end is None or entry["t"] <= end):
                explained.append(entry["write_id"])
                break
    return sorted(set(explained))


def missing_order_ids(dsn: str, order_ids: Sequence[int]) -> list[int]:
    """Acknowledged order ids that are not in the orders table (one query, however many ids)."""
    if not order_ids:
        return []
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM orders WHERE id = ANY(%s)", (list(order_ids),))
            present = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    return sorted(set(order_ids) - present)


# ----------------------------------------------------------------------------- acknowledged writes


class AcknowledgedWritesFile:
    """Keeps a file of acknowledged order ids current (every 0.5 s, written atomically), so the DAG's
    final integrity check reads what clients were told, as a production ledger would provide."""

    def __init__(self, traffic: TrafficGenerator, path: str | Path, interval: float = 0.5) -> None:
        self.traffic, self.path, self.interval = traffic, Path(path), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="acknowledged-writes", daemon=True)

    def start(self) -> AcknowledgedWritesFile:
        self.write()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.write()

    def write(self) -> None:
        ids = sorted({e["write_id"] for e in self.traffic.ledger if e.get("write_id") is not None})
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("".join(f"{order_id}\n" for order_id in ids))
        os.replace(temporary, self.path)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()


# ----------------------------------------------------------------------------- in its own process


class TrafficProcess:
    """The generator in a child process (``python -m sandbox.traffic --control-stdin``).

    Why a process: whoever starts the traffic (the rehearsal runs Airflow's ``dag.test()`` in its
    own process) can stall for seconds (provider discovery, the GX import: 3-19 s measured). A
    generator thread in that process froze with it, then reused keep-alive connections the router
    had closed meanwhile and logged failures no server caused. In its own process the paced
    clock keeps running whatever the parent does.

    * :meth:`start` spawns the child and returns once it sends traffic (it has learnt user ids
      and written the acknowledged-writes file once); a child that cannot start raises
      :class:`TrafficError` with the tail of its log.
    * :meth:`stop` asks it to stop (closing its stdin), waits for the requests in flight, reaps
      it (SIGKILL after `stop_timeout`), and returns the ledger it wrote. Safe to call twice and
      on any path; also the context manager's exit.
    * The child stops by itself at its time/count bound, on SIGTERM, and when its stdin closes,
      which also happens when the parent dies: it never outlives the run that started it.

    The ledger (JSONL, every request) and the acknowledged-writes file are the same as in-process:
    :func:`report` takes the returned ledger.
    """

    READY_TIMEOUT_SECONDS = 60.0

    def __init__(self, base_url: str, *, ledger_path: str | Path, rps: float = 40, max_seconds: float = 600,
                 seed: int | None = None, acknowledged_writes: str | Path | None = None,
                 log_path: str | Path | None = None, stop_timeout: float = 30.0,
                 python: str | None = None, env: dict[str, str] | None = None) -> None:
        if rps <= 0 or max_seconds <= 0:
            raise ValueError(f"rps and max_seconds must be > 0, got rps={rps}, max_seconds={max_seconds}")
        self.base_url, self.rps, self.max_seconds, self.seed = base_url, float(rps), float(max_seconds), seed
        self.ledger_path = Path(ledger_path)
        self.acknowledged_writes = Path(acknowledged_writes) if acknowledged_writes else None
        self.log_path = Path(log_path) if log_path else self.ledger_path.with_suffix(".log")
        self.stop_timeout = stop_timeout
        self.python, self.env = python or sys.executable, env
        self.process: subprocess.Popen[str] | None = None
        self.started_at: float | None = None  # epoch seconds of the child's first slot
        self._ledger: list[dict[str, Any]] | None = None

    def argv(self) -> list[str]:
        argv = [self.python, "-m", "sandbox.traffic", "--base-url", self.base_url, "--rps", repr(self.rps),
                "--max-seconds", repr(self.max_seconds), "--ledger", str(self.ledger_path), "--control-stdin",
                "--no-report"]
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        if self.acknowledged_writes:
            argv += ["--acknowledged-writes", str(self.acknowledged_writes)]
        return argv

    def start(self) -> TrafficProcess:
        if self.process is not None:
            raise TrafficError("traffic process already started; create a new one for another run")
        self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
        self.ledger_path.unlink(missing_ok=True)  # only this run's ledger may be read back
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(self.env if self.env is not None else os.environ)
        # The child imports sandbox.* from this checkout, whatever the caller's working directory.
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
        with open(self.log_path, "w") as log_file:
            # Its own session: a Ctrl-C at the terminal reaches the parent only, which then stops
            # the child in order (last requests answered, ledger written) instead of both dying.
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=log_file, text=True, env=env, start_new_session=True)
        try:
            ready = self._read_ready()
        except BaseException:
            self.stop()
            raise
        self.started_at = ready.get("started_at")
        return self

    def _read_ready(self) -> dict[str, Any]:
        """The child's first stdout line, {"event": "started", ...}, within READY_TIMEOUT_SECONDS."""
        import selectors

        assert self.process is not None and self.process.stdout is not None
        # A poll-based selector: select() refuses a descriptor number >= 1024, which a long-lived
        # process (a pytest session running many rehearsals) can reach.
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(self.READY_TIMEOUT_SECONDS)
        line = self.process.stdout.readline() if ready else ""
        try:
            message = json.loads(line) if line.strip() else {}
        except ValueError:
            message = {}
        if message.get("event") != "started":
            why = "exited" if self.process.poll() is not None else f"sent no start line in {self.READY_TIMEOUT_SECONDS:g}s"
            raise TrafficError(f"traffic process {why} (exit {self.process.poll()}): {self._log_tail()}")
        return message

    def stop(self) -> list[dict[str, Any]]:
        """Stop the child, reap it, return its ledger ([] if it died before writing one)."""
        process = self.process
        if process is None:
            return []
        if process.returncode is None:
            try:
                if process.stdin is not None:
                    process.stdin.close()  # the child's signal to finish its requests and write the ledger
            except OSError:
                pass
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if self._ledger is None:
            self._ledger = load_jsonl(self.ledger_path) if self.ledger_path.exists() else []
        return self._ledger

    @property
    def ledger(self) -> list[dict[str, Any]]:
        if self._ledger is None:
            raise TrafficError("the ledger is read when the traffic process has stopped: call stop() first")
        return self._ledger

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> TrafficProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(no output)"
        except OSError:
            return "(no log)"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m sandbox.traffic`: bounded traffic through the sandbox router until done or
    interrupted, then the ledger (JSONL) and the report. Used by `make airflow`, and by the
    rehearsal (through :class:`TrafficProcess`)."""
    import argparse
    import signal

    from sandbox.config import SandboxConfig

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--rps", type=float, default=40.0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=None, help="repeatable request plan")
    parser.add_argument("--base-url", default=None, help="router URL (default: the sandbox's, from the environment)")
    parser.add_argument("--ledger", type=Path, default=None, help="JSONL ledger path (default: <state>/traffic.jsonl)")
    parser.add_argument("--acknowledged-writes", type=Path, default=None,
                        help="keep this file of acknowledged order ids current (every 0.5 s)")
    parser.add_argument("--control-stdin", action="store_true",
                        help="stop when stdin closes; print one JSON line when traffic starts")
    parser.add_argument("--no-report", action="store_true", help="write the ledger only (the caller reports)")
    args = parser.parse_args(argv)
    config = SandboxConfig.from_env()
    generator = TrafficGenerator(args.base_url or config.router_url, rps=args.rps, max_seconds=args.max_seconds,
                                 seed=args.seed)
    signal.signal(signal.SIGTERM, lambda *_: generator._stop.set())  # main thread then leaves join()
    generator.start()
    acknowledged = AcknowledgedWritesFile(generator, args.acknowledged_writes).start() if args.acknowledged_writes else None
    if args.control_stdin:
        def stop_when_stdin_closes() -> None:
            sys.stdin.read()  # returns at EOF: the parent closed the pipe, or died
            generator._stop.set()

        threading.Thread(target=stop_when_stdin_closes, name="stdin-control", daemon=True).start()
        print(json.dumps({"event": "started", "pid": os.getpid(), "started_at": generator.started_at,
                          "workers": generator.workers, "user_ids": len(generator._user_ids)}), flush=True)
    try:
        generator.join()
    except KeyboardInterrupt:
        generator.stop()
    if acknowledged is not None:
        acknowledged.stop()
    ledger_path = dump_jsonl(generator.ledger, args.ledger or config.state_dir / "traffic.jsonl")
    if args.no_report:
        return 0
    outcome = report(generator.ledger, config.app_dsn())
    outcome.pop("lost_write_ids", None)
    print(json.dumps({"ledger": str(ledger_path), **outcome}, indent=2))
    return 0 if outcome["failed"] == 0 and outcome["writes_lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
