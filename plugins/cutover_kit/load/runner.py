"""Run the stage-6 user mix against one color's base URL with Locust, as a subprocess.

Locust runs in its own process because importing it monkey-patches everything with gevent. The
run is headless, bounded by the profile's step shape and request cap and by a hard timeout, and
leaves its CSV, HTML and JSON reports in `out_dir` under the color's name. A target that does
not answer, a Locust that is missing or crashes, a locustfile that does not load, or a run that
recorded nothing raise LoadRunError with the reason: a run never passes by default.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cutover_kit.load.history import HistoryError, SecondFigures, StepFigures, parse_run_figures
from cutover_kit.load.profile import LoadProfile
from cutover_kit.paths import REPO_ROOT

LOG = logging.getLogger(__name__)
DEFAULT_LOCUSTFILE = REPO_ROOT / "include" / "load" / "locustfile.py"
# Past the shape's last step: Locust's start-up (~1 s) and stop (users finish their request).
TIMEOUT_GRACE_SECONDS = 30.0
STDERR_TAIL_CHARS = 1500


class LoadRunError(RuntimeError):
    """The load run could not produce figures; the message says why."""


@dataclass(frozen=True)
class LoadRunResult:
    color: str
    target: str
    seconds: float
    steps: list[StepFigures]
    artifacts: dict[str, str]
    totals: dict[str, Any] = field(default_factory=dict)
    # With the profile's stress phase: the stress step past the knee and the recovery, per second.
    stress: StepFigures | None = None
    recovery: list[SecondFigures] = field(default_factory=list)
    # Epoch second of the history's first row (steps are whole seconds from there), for aligning
    # Prometheus series with the steps.
    start_epoch: int | None = None
    # Epoch seconds around the Locust process: the window bottleneck hints query.
    started_at: float | None = None
    ended_at: float | None = None
    # CPU seconds (user + system) the Locust process used: one process is one core at most, so a
    # generator near a full core may be the limit the "knee" shows (cutover_kit.load.bottlenecks).
    generator_cpu_seconds: float | None = None


def run_locust(profile: LoadProfile, color: str, out_dir: Path, locustfile: Path = DEFAULT_LOCUSTFILE,
               python: str = sys.executable, timeout_seconds: float | None = None) -> LoadRunResult:
    if not color.isidentifier():
        raise LoadRunError(f"color must be a plain name such as blue or green, got {color!r}")
    if not Path(locustfile).is_file():
        raise LoadRunError(f"locustfile {locustfile} does not exist")
    _require_listening(profile.target)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / color
    for stale in out_dir.glob(f"{color}_*.csv"):  # absolute state: a rerun never reads an old run
        stale.unlink()
    artifacts = {"csv_prefix": str(prefix), "stats_history_csv": f"{prefix}_stats_history.csv",
                 "html": f"{prefix}.html", "json": f"{prefix}.json"}
    command = [python, "-m", "locust", "-f", str(locustfile), "--headless", "--host", profile.target,
               "--csv", str(prefix), "--csv-full-history", "--html", artifacts["html"], "--json-file", str(prefix),
               "--only-summary", "--loglevel", "INFO", "--exit-code-on-error", "0", "--stop-timeout", "5"]
    env = dict(os.environ, **profile.to_env())
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    timeout = timeout_seconds if timeout_seconds is not None else profile.duration_seconds + TIMEOUT_GRACE_SECONDS
    LOG.info("load %s: %s, %d steps of %gs, cap %d requests, timeout %gs", color, profile.target,
             len(profile.steps), profile.step_seconds, profile.max_requests, timeout)
    started, started_at = time.monotonic(), time.time()
    children_before = _children_cpu_seconds()
    try:
        done = subprocess.run(command, env=env, cwd=out_dir, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise LoadRunError(f"load {color}: python {python} not found") from None
    except subprocess.TimeoutExpired:
        raise LoadRunError(f"load {color}: Locust did not finish within {timeout:g}s (killed)") from None
    seconds = round(time.monotonic() - started, 2)
    generator_cpu = round(_children_cpu_seconds() - children_before, 2)
    (out_dir / f"{color}_locust.log").write_text(done.stderr)
    if done.returncode != 0:
        raise LoadRunError(f"load {color}: Locust exited {done.returncode}: {_tail(done.stderr)}")
    history = Path(artifacts["stats_history_csv"])
    if not history.is_file():
        raise LoadRunError(f"load {color}: Locust wrote no stats history ({history}): {_tail(done.stderr)}")
    try:
        stress = profile.stress
        figures = parse_run_figures(history.read_text(), profile.step_seconds, len(profile.steps),
                                    stress.seconds if stress else None, stress.recovery_seconds if stress else None)
    except HistoryError as error:
        raise LoadRunError(f"load {color}: {error}") from None
    steps = figures.steps
    # The final report counts every request; the history only what its 1 s rows saw. A run the
    # request cap stops within its first second (a fast app, a small cap) has requests in the
    # report and no history row after the first: it made requests, it just has no step figures.
    totals = _totals(Path(artifacts["json"]))
    if sum(step.requests for step in steps) == 0 and not totals.get("requests"):
        raise LoadRunError(f"load {color}: no request was made in {seconds}s: {_tail(done.stderr)}")
    if sum(step.requests for step in steps) == 0:
        LOG.warning("load %s: the run ended after %ss, before Locust's first 1 s history row: %d requests, no per-step figures",
                    color, seconds, totals["requests"])
    LOG.info("load %s: %d requests, %d failed, in %ss", color, totals.get("requests", 0), totals.get("failures", 0), seconds)
    return LoadRunResult(color, profile.target, seconds, steps, artifacts, totals, figures.stress, figures.recovery,
                         figures.start_epoch, started_at, time.time(), generator_cpu)


def _children_cpu_seconds() -> float:
    """CPU seconds of this process's waited-for children so far (Locust is one, run to its end)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _require_listening(target: str) -> None:
    parts = urlsplit(target)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            pass
    except OSError as error:
        raise LoadRunError(f"target {target} is unreachable: {error}") from None


def _totals(json_path: Path) -> dict[str, Any]:
    """Requests and failures per endpoint from Locust's --json-file report."""
    if not json_path.is_file():
        return {}
    entries = json.loads(json_path.read_text())
    return {
        "requests": sum(entry["num_requests"] for entry in entries),
        "failures": sum(entry["num_failures"] for entry in entries),
        "endpoints": {f"{entry['method']} {entry['name']}": {"requests": entry["num_requests"], "failures": entry["num_failures"]}
                      for entry in entries},
    }


def _tail(text: str) -> str:
    text = text.strip()
    return ("..." + text[-STDERR_TAIL_CHARS:]) if len(text) > STDERR_TAIL_CHARS else (text or "(no output)")
