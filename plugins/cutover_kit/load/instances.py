"""Stage instances: each color started for stages 6 and 7 on a copy of the database, so the load
and the active scanners never touch the instances serving users nor the live data. No Airflow.

One Connection per color (``app_blue_loadtest``, ``app_green_loadtest``; conn_type http) says
where the instance answers (host, port) and, in its extra, how to get it:

* ``start_command`` (argv list; ``{database}`` is replaced by the copy's name): run before the
  stage; when it returns 0 the instance must answer ``ready_path`` on host:port (polled for
  ``ready_timeout_seconds``). With a start command, the stage makes the copy first.
* ``stop_command`` (argv list): run after the stage whatever happened (ALL_DONE clean-up).
* ``command_env`` (map), ``command_cwd``, ``command_timeout_seconds`` (default 180).
* ``database_role``: the PostgreSQL role the instance connects as (its own, so pg_stat_statements
  and pg_stat_activity tell its statements and connections from the other color's); without it
  the database half of the bottleneck hints is "unavailable".
* ``metrics_selector``: the PromQL label matchers of its Prometheus target (default
  ``job="stage_apps",color="<color>"``), for the CPU hint.
* Neither command: a pre-provisioned load environment (its own database is the team's business);
  the stage only checks that it answers and stops nothing.

Every target stays on loopback (cutover_kit.load.target): a remote load environment is reached
through a local tunnel or port-forward.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cutover_kit.load.target import TargetError, loopback_base_url

LOG = logging.getLogger(__name__)

DATABASE_PLACEHOLDER = "{database}"
DEFAULT_COMMAND_TIMEOUT_SECONDS = 180.0
DEFAULT_READY_TIMEOUT_SECONDS = 60.0
OUTPUT_TAIL_CHARS = 1500
# The Prometheus job of the stage instances (the sandbox's include/prometheus/prometheus.yml.tmpl).
DEFAULT_METRICS_JOB = "stage_apps"
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class StageInstanceError(RuntimeError):
    """A stage instance is misdescribed, did not start, did not answer or did not stop."""


@dataclass(frozen=True)
class StageInstance:
    color: str
    url: str
    start_command: tuple[str, ...] | None = None
    stop_command: tuple[str, ...] | None = None
    command_env: Mapping[str, str] = field(default_factory=dict)
    command_cwd: str | None = None
    command_timeout_seconds: float = DEFAULT_COMMAND_TIMEOUT_SECONDS
    ready_path: str = "/readyz"
    ready_timeout_seconds: float = DEFAULT_READY_TIMEOUT_SECONDS
    database_role: str | None = None
    metrics_selector: str = ""

    def __post_init__(self) -> None:
        if not self.metrics_selector:
            object.__setattr__(self, "metrics_selector", f'job="{DEFAULT_METRICS_JOB}",color="{self.color}"')

    @property
    def started_by_stage(self) -> bool:
        return self.start_command is not None

    def describe(self) -> str:
        how = "started on the stage's database copy" if self.started_by_stage else "pre-provisioned"
        return f"{self.color} stage instance {self.url} ({how})"


def _argv(value: Any, name: str, conn_id: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(part, str) and part for part in value):
        raise StageInstanceError(f"Connection {conn_id}: extra.{name} must be a non-empty list of strings (argv), got {value!r}")
    return tuple(value)


def instance_from_connection(color: str, conn_id: str, host: str | None, port: int | None, schema: str | None,
                             extra: Mapping[str, Any]) -> StageInstance:
    """Build (and check) a StageInstance from a Connection's fields; errors name the field."""
    if not host or not port:
        raise StageInstanceError(f"Connection {conn_id}: host and port of the {color} stage instance are required")
    scheme = schema if schema in ("http", "https") else "http"
    try:
        url = loopback_base_url(f"{scheme}://{host}:{port}")
    except TargetError as error:
        raise StageInstanceError(f"Connection {conn_id}: {error}") from None
    start, stop = _argv(extra.get("start_command"), "start_command", conn_id), _argv(extra.get("stop_command"), "stop_command", conn_id)
    if (start is None) != (stop is None):
        raise StageInstanceError(f"Connection {conn_id}: give both start_command and stop_command, or neither "
                                 "(a pre-provisioned instance): what the stage starts, it must stop")
    env = extra.get("command_env") or {}
    if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise StageInstanceError(f"Connection {conn_id}: extra.command_env must map names to strings")
    numbers = {}
    for name, default in (("command_timeout_seconds", DEFAULT_COMMAND_TIMEOUT_SECONDS),
                          ("ready_timeout_seconds", DEFAULT_READY_TIMEOUT_SECONDS)):
        value = extra.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
            raise StageInstanceError(f"Connection {conn_id}: extra.{name} must be a number of seconds in (0, 3600], got {value!r}")
        numbers[name] = float(value)
    ready_path = extra.get("ready_path", "/readyz")
    if not isinstance(ready_path, str) or not ready_path.startswith("/"):
        raise StageInstanceError(f"Connection {conn_id}: extra.ready_path must start with /, got {ready_path!r}")
    role = extra.get("database_role")
    if role is not None and not (isinstance(role, str) and ROLE_NAME.match(role)):
        raise StageInstanceError(f"Connection {conn_id}: extra.database_role must be a plain lower-case PostgreSQL role name, got {role!r}")
    selector = extra.get("metrics_selector", f'job="{DEFAULT_METRICS_JOB}",color="{color}"')
    if not isinstance(selector, str) or not selector or any(char in selector for char in "{}"):
        raise StageInstanceError(f"Connection {conn_id}: extra.metrics_selector must be label matchers without braces, "
                                 f"e.g. job=\"{DEFAULT_METRICS_JOB}\",color=\"{color}\"; got {selector!r}")
    return StageInstance(color=color, url=url, start_command=start, stop_command=stop, command_env=dict(env),
                         command_cwd=extra.get("command_cwd"), ready_path=ready_path, database_role=role,
                         metrics_selector=selector, **numbers)


def render_command(argv: Sequence[str], database: str | None) -> list[str]:
    """argv with {database} replaced; a command that needs a database without one is refused."""
    if any(DATABASE_PLACEHOLDER in part for part in argv) and not database:
        raise StageInstanceError(f"command {list(argv)} needs the database copy's name, and none was made")
    return [part.replace(DATABASE_PLACEHOLDER, database or "") for part in argv]


def _run(instance: StageInstance, argv: list[str], what: str) -> float:
    started = time.monotonic()
    try:
        done = subprocess.run(argv, env={**os.environ, **instance.command_env}, cwd=instance.command_cwd,
                              capture_output=True, text=True, timeout=instance.command_timeout_seconds, check=False)
    except FileNotFoundError as error:
        raise StageInstanceError(f"{what} {instance.color}: {error}") from None
    except subprocess.TimeoutExpired:
        raise StageInstanceError(f"{what} {instance.color}: no answer within {instance.command_timeout_seconds:g} s "
                                 f"({' '.join(argv)})") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-OUTPUT_TAIL_CHARS:] or "(no output)"
        raise StageInstanceError(f"{what} {instance.color}: exit {done.returncode}: {tail}")
    return time.monotonic() - started


def wait_ready(instance: StageInstance, probe: Callable[[str], int | None], sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> float:
    """Poll url+ready_path until it answers 200; seconds waited, or StageInstanceError naming the last answer."""
    started = clock()
    last = None
    while True:
        last = probe(instance.url + instance.ready_path)
        if last == 200:
            return clock() - started
        if clock() - started >= instance.ready_timeout_seconds:
            raise StageInstanceError(f"{instance.describe()} not ready after {instance.ready_timeout_seconds:g} s: "
                                     f"{instance.ready_path} answered {last if last is not None else 'nothing'}")
        sleep(0.25)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    import requests

    try:
        return requests.get(url, timeout=timeout).status_code
    except requests.RequestException:
        return None


def start_instance(instance: StageInstance, database: str | None,
                   probe: Callable[[str], int | None] = http_status) -> dict[str, Any]:
    """Start (when the Connection says how) and wait until ready; a summary for XCom."""
    started_seconds = None
    if instance.start_command is not None:
        started_seconds = _run(instance, render_command(instance.start_command, database), "start")
    ready_seconds = wait_ready(instance, probe)
    return {"color": instance.color, "url": instance.url, "started_by_stage": instance.started_by_stage,
            "database": database if instance.started_by_stage else None,
            "start_seconds": None if started_seconds is None else round(started_seconds, 2),
            "ready_seconds": round(ready_seconds, 2)}


def stop_instance(instance: StageInstance) -> float | None:
    """Run the stop command (idempotent on the instance's side); None for a pre-provisioned one."""
    if instance.stop_command is None:
        return None
    return _run(instance, render_command(instance.stop_command, None), "stop")
