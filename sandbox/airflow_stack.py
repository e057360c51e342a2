"""`airflow standalone` under a test's or benchmark's control, driven through its REST API.

A real scheduler, triggerer, DAG processor and API server (SQLite, LocalExecutor) on a private
AIRFLOW_HOME and port, with this project's DAGs and the sandbox's Connections as AIRFLOW_CONN_*
variables. Used where dag.test() is not enough: two DAG runs at once (an emergency rollback
while a cutover runs), schedules, the REST API's own parameter validation.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from sandbox.airflow_env import REPO_ROOT, airflow_environment

TERMINAL_RUN_STATES = ("success", "failed")


class AirflowStackError(RuntimeError):
    pass


def _log_line(item: Any) -> str:
    """One structured log record as text; a failure's exception (error_detail) is spelled out."""
    if not isinstance(item, dict):
        return str(item)
    line = str(item.get("event", ""))
    for detail in item.get("error_detail") or []:
        if isinstance(detail, dict):
            line += f"\n{detail.get('exc_type', 'Exception')}: {detail.get('exc_value', '')}"
    return line


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds between two ISO timestamps of the REST API (None when either is missing)."""
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


class AirflowStack:
    def __init__(self, home: Path, api_port: int, connections: Mapping[str, Mapping[str, Any]],
                 extra_env: Mapping[str, str] | None = None, user: str = "admin", password: str = "admin",
                 log_port_base: int | None = None, extra_users: Mapping[str, str] | None = None) -> None:
        self.home = Path(home)
        self.api_port = api_port
        # Worker and triggerer log servers: other Airflows on a shared machine hold the defaults.
        self.log_port_base = api_port + 1 if log_port_base is None else log_port_base
        self.base_url = f"http://127.0.0.1:{api_port}"
        self.connections = dict(connections)
        self.extra_env = dict(extra_env or {})
        self.user, self.password = user, password
        # More users of the simple auth manager ({name: password}, role admin): e.g. someone outside
        # an approval's assigned_users, refused with 403 whatever their role.
        self.extra_users = dict(extra_users or {})
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()

    # ------------------------------------------------------------------ lifecycle

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(airflow_environment("standalone"))
        venv_bin = str(Path(sys.executable).parent)
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_port_base),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_port_base + 1),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:admin" for name in [self.user, *self.extra_users]),
            # New DAGs start paused in standalone; the caller unpauses what it triggers.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # standalone starts its components as `airflow ...` subprocesses: the venv must be on PATH.
            "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
        })
        for conn_id, connection in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
        env.update(self.extra_env)
        return env

    # 20-35 s on a quiet 2-core machine; at load 8-20 (other rehearsals beside it) start-up was
    # seen to pass 180 s, so the wait is generous: a stack that never gets healthy still fails.
    def start(self, timeout: float = 420.0) -> AirflowStack:
        self.home.mkdir(parents=True, exist_ok=True)
        # A fixed local password instead of a generated one (simple auth manager, development only).
        (self.home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({self.user: self.password, **self.extra_users}))
        log = open(self.home / "standalone.log", "ab")
        # Own session: standalone stops its children only on SIGINT to the whole group.
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], cwd=REPO_ROOT,
                                        env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AirflowStackError(f"airflow standalone exited with {self.process.returncode}; see {self.home}/standalone.log")
            try:
                health = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=2).json()
                if all(health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler", "triggerer")):
                    self._login()
                    return self
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1)
        self.stop()
        raise AirflowStackError(f"airflow standalone not healthy within {timeout:.0f} s; see {self.home}/standalone.log")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        for sig, grace in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children that outlive standalone (task runners) share its process group.
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ REST

    def _login(self) -> None:
        reply = requests.post(f"{self.base_url}/auth/token", json={"username": self.user, "password": self.password}, timeout=10)
        reply.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"

    def api_as(self, user: str, password: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One REST call as another user (a fresh token; the stack's own session is untouched)."""
        reply = requests.post(f"{self.base_url}/auth/token", json={"username": user, "password": password}, timeout=10)
        reply.raise_for_status()
        headers = {"Authorization": f"Bearer {reply.json()['access_token']}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.base_url}/api/v2{path}", headers=headers,
                                timeout=kwargs.pop("timeout", 15), **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=kwargs.pop("timeout", 15), **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.api("GET", f"/dags/{dag_id}").status_code == 200:
                return
            time.sleep(1)
        raise AirflowStackError(f"DAG {dag_id} not parsed within {timeout:.0f} s")

    def unpause(self, dag_id: str, timeout: float = 60.0) -> None:
        self.wait_for_dag(dag_id)
        # The API server shares SQLite with the scheduler and the DAG processor: right after the
        # first parse, a write can meet their lock and answer 500. Retried for a bounded time; any
        # other answer, or a 500 that persists, still fails.
        deadline = time.time() + timeout
        while True:
            reply = self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
            if reply.status_code < 500 or time.time() > deadline:
                break
            time.sleep(2)
        reply.raise_for_status()

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> requests.Response:
        """POST a new run; the response is returned as is so callers can check a refusal (400)."""
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json={"conf": dict(conf or {}), "logical_date": None})

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        reply = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        reply.raise_for_status()
        return reply.json()

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        reply = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 500})
        reply.raise_for_status()
        return {ti["task_id"]: ti["state"] for ti in reply.json()["task_instances"]}

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        reply = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        reply.raise_for_status()
        return reply.json()

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        reply = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                         params={"deserialize": "true"})
        reply.raise_for_status()
        return reply.json()["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        reply = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                         params={"full_content": "true"}, headers={"Accept": "application/json"})
        reply.raise_for_status()
        content = reply.json().get("content", [])
        if isinstance(content, str):
            return content
        return "\n".join(_log_line(item) for item in content)

    def wait_until(self, predicate, timeout: float, what: str, interval: float = 0.5) -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AirflowStackError(f"timed out after {timeout:.0f} s waiting for {what}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict[str, Any]:
        return self.wait_until(
            lambda: (lambda run: run if run["state"] in TERMINAL_RUN_STATES else None)(self.run(dag_id, run_id)),
            timeout, f"{dag_id} run {run_id} to finish", interval=1.0)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's runs, oldest first."""
        reply = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "start_date", "limit": 100})
        reply.raise_for_status()
        return reply.json()["dag_runs"]

    def wait_for_scheduled_run(self, dag_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """The first run the scheduler created by itself, once it has finished."""
        def finished_scheduled_run() -> dict[str, Any] | None:
            return next((run for run in self.runs(dag_id)
                         if run["run_type"] == "scheduled" and run["state"] in TERMINAL_RUN_STATES), None)
        return self.wait_until(finished_scheduled_run, timeout, f"a scheduled {dag_id} run to finish", interval=1.0)

    def task_timings(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """Per task: seconds from the run's start to the task's start and end, and its try number."""
        run = self.run(dag_id, quote(run_id))
        reply = self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances", params={"limit": 500})
        reply.raise_for_status()
        return {ti["task_id"]: {"start": seconds_between(run["start_date"], ti.get("start_date")),
                                "end": seconds_between(run["start_date"], ti.get("end_date")), "try": ti.get("try_number")}
                for ti in reply.json()["task_instances"]}


@contextmanager
def sandbox_under_airflow(prefix: str, port_offset: int, dag_ids: Iterable[str], traffic_rps: int = 30,
                          traffic_seconds: int = 600, seed: int = 11,
                          extra_users: Mapping[str, str] | None = None) -> Iterator[tuple[AirflowStack, Any]]:
    """A scratch sandbox (ports + port_offset), traffic through its router, and `airflow standalone`
    (API on 17080 + port_offset) with the given DAGs unpaused; everything stopped and removed after.
    Yields (airflow, sandbox)."""
    from sandbox.config import scratch_config
    from sandbox.launcher import Sandbox
    from sandbox.traffic import TrafficGenerator

    box = Sandbox(scratch_config(prefix, port_offset))
    state_dir = box.config.state_dir
    airflow = generator = None
    try:
        box.up()
        generator = TrafficGenerator(box.config.router_url, rps=traffic_rps, max_seconds=traffic_seconds, seed=seed)
        generator.start()
        airflow = AirflowStack(state_dir / "airflow", api_port=17080 + port_offset, connections=box.connections(),
                               extra_env={"CUTOVER_GX_ARTIFACT_DIR": str(state_dir / "artifacts")},
                               extra_users=extra_users)
        airflow.start()
        for dag_id in dag_ids:
            airflow.unpause(dag_id)
        yield airflow, box
    finally:
        if airflow is not None:
            airflow.stop()
        if generator is not None:
            generator.stop()
        box.down()
        shutil.rmtree(state_dir, ignore_errors=True)
