"""The stage instances of stages 6 and 7: one extra blue and one extra green, same build and
configuration as the live ones, on their own loopback ports, against a copy of the database that
the cutover's stage 6 made (restored from stage 2's verified backup), so load tests and active
scanners never touch the instances serving users nor the live database.

What keeps them apart from the live apps:
- their own ports (SANDBOX_BLUE_STAGE_PORT, SANDBOX_GREEN_STAGE_PORT), not behind HAProxy, and
  scraped under their own Prometheus job, so nothing they do shows in the live SLO series;
- the copy database (``--database``), never the live `cutover` one;
- Redis database 1 instead of 0: green's in-process BullMQ worker and blue's Sidekiq queue of the
  live apps never see a job created by the load (those jobs name orders of the copy). Blue has no
  Sidekiq worker here: its jobs stop at the enqueue and are flushed at ``stage-down``;
- blue's own metrics directory; green forwards Rails-flagged requests to the stage blue;
- their own database roles (cutover_stage_blue, cutover_stage_green: members of `cutover`, made
  at the sandbox's PostgreSQL set-up), so pg_stat_statements and pg_stat_activity tell the
  load's statements and connections per color. Prometheus scrapes their ports as job
  "stage_apps" (a target that is not running is just `up == 0`), apart from the live "apps" job
  every SLO rule and template reads.

Their PIDs live in run/stage-instances.json (not state.json, which the process that ran ``up``
owns); ``stage-down`` stops them and the sandbox's ``down`` and leftover sweep stop them too.

Faults: the rehearsal writes <state>/stage-faults.json ([{color, body}], the ``/__fault`` bodies
of the scenario's faults marked ``stage_instances: true``); ``stage-up`` applies them once the
instances answer, so a capacity or security defect of the build is also in its stage instance.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg2.extensions
import redis
import requests

from sandbox.launcher.apps import BLUE_PUMA_THREADS, GREEN_NODE_MAJOR
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.processes import http_ok
from sandbox.node import project_node

log = logging.getLogger("sandbox")

STAGE_REDIS_DB = 1
STAGE_NAMES = {"blue": "blue_stage", "green": "green_stage"}
# A PostgreSQL identifier we create ourselves: no quoting games in a database name from a CLI.
DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def stage_fault_bodies(faults: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{color: [/__fault body, ...]} from the stage-faults file's entries; refuses a bad entry."""
    bodies: dict[str, list[dict[str, Any]]] = {}
    for index, entry in enumerate(faults):
        if not isinstance(entry, dict) or entry.get("color") not in STAGE_NAMES or not isinstance(entry.get("body"), dict):
            raise SandboxError(f"stage-faults entry {index}: expected {{color: blue|green, body: {{...}}}}, got {entry!r}")
        bodies.setdefault(entry["color"], []).append(entry["body"])
    return bodies


def stage_role(state: dict[str, Any], color: str) -> dict[str, str]:
    """{user, password} of the color's stage role from the sandbox state; a state from before the
    roles existed is refused (restart the sandbox) rather than run as `cutover` unnoticed."""
    role = (state["postgres"].get("stage_roles") or {}).get(color)
    if not role or not role.get("user") or not role.get("password"):
        raise SandboxError(f"the sandbox state has no database role for the {color} stage instance; "
                           "it predates stage roles: run `python -m sandbox.launcher down` and up again")
    return role


class StageInstances:
    """Mixed into :class:`~sandbox.launcher.lifecycle.Sandbox`."""

    @property
    def stage_instances_file(self) -> Path:
        return self.config.run_dir / "stage-instances.json"

    @property
    def stage_faults_file(self) -> Path:
        return self.config.state_dir / "stage-faults.json"

    def stage_url(self, color: str) -> str:
        return f"http://{self.config.host}:{self.config.stage_port(color)}"

    def stage_up(self, database: str, colors: tuple[str, ...] = ("blue", "green")) -> dict[str, str]:
        """Start the stage instance of each of `colors` against `database` (idempotent: one already
        running is stopped first, so a retried task starts clean); wait until each answers /readyz;
        apply its stage faults. Returns {color: url}. Start blue before green: the stage green
        forwards Rails-flagged requests to the stage blue."""
        if not DATABASE_NAME.match(database):
            raise SandboxError(f"stage database {database!r} is not a plain lower-case PostgreSQL name")
        unknown = [color for color in colors if color not in STAGE_NAMES]
        if unknown or not colors:
            raise SandboxError(f"stage colors must be among {tuple(STAGE_NAMES)}, got {colors}")
        state = self._require_state()
        self._check_database_exists(state, database)
        self.stage_down(colors)
        pids = self._read_stage_pids()
        try:
            for color in colors:
                pids[color] = self._spawn_stage(color, database, state)
                self._write_stage_pids(pids)
            for color in colors:
                name = STAGE_NAMES[color]
                url = self.stage_url(color)
                self._wait_ready(f"{name} app", lambda url=url: http_ok(f"{url}/readyz"), self._log_path(name),
                                 pids[color], timeout=120.0)
            self._apply_stage_faults(colors)
        except BaseException:
            self.stage_down(colors)
            raise
        urls = {color: self.stage_url(color) for color in colors}
        log.info("stage instances up on database %s: %s", database, urls)
        return urls

    def stage_down(self, colors: tuple[str, ...] = ("blue", "green")) -> list[str]:
        """Stop the stage instances of `colors` (recorded or by pidfile); once none is left,
        flush their Redis database."""
        recorded = self._read_stage_pids()
        stopped = []
        for color, name in STAGE_NAMES.items():
            if color not in colors:
                continue
            pids = {recorded[color]} if color in recorded else set()
            pidfile = self.config.run_dir / f"{name}.pid"
            if pidfile.exists():
                try:
                    pids.add(int(pidfile.read_text().split()[0]))
                except (ValueError, IndexError):
                    pass
            for pid in pids:
                if self._owned(pid):
                    self._terminate(pid)
                    stopped.append(name)
            pidfile.unlink(missing_ok=True)
            recorded.pop(color, None)
        if recorded:
            self._write_stage_pids(recorded)
        else:  # also on a sandbox that never started any (its run dir may not even exist yet)
            self.stage_instances_file.unlink(missing_ok=True)
            self._flush_stage_redis()
        if stopped:
            log.info("stage instances stopped: %s", ", ".join(stopped))
        return stopped

    # ------------------------------------------------------------------------------- helpers

    def _check_database_exists(self, state: dict[str, Any], database: str) -> None:
        with psycopg2.connect(self._dsn_from(state), connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            found = cur.fetchone() is not None
        conn.close()
        if not found:
            raise SandboxError(f"stage database {database} does not exist; the stage makes it before starting instances")
        if database == state["postgres"]["dbname"]:
            raise SandboxError(f"stage instances must not run on the live database {database}")

    def _stage_redis_url(self) -> str:
        return f"redis://{self.config.host}:{self.config.redis_port}/{STAGE_REDIS_DB}"

    def _spawn_stage(self, color: str, database: str, state: dict[str, Any]) -> int:
        cfg, pg, name = self.config, state["postgres"], STAGE_NAMES[color]
        port = cfg.stage_port(color)
        role = stage_role(state, color)
        if color == "blue":
            env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "DATABASE_URL"))}
            metrics_dir = cfg.state_dir / "blue-stage-metrics"
            metrics_dir.mkdir(parents=True, exist_ok=True)
            env.update({
                "PGHOST": pg["host"], "PGPORT": str(pg["port"]), "PGDATABASE": database,
                "PGUSER": role["user"], "PGPASSWORD": role["password"],
                "REDIS_URL": self._stage_redis_url(), "PORT": str(port), "APP_COLOR": "blue",
                "METRICS_DIR": str(metrics_dir), "RAILS_ENV": "production",
                "RAILS_MAX_THREADS": str(BLUE_PUMA_THREADS), "RAILS_LOG_TO_STDOUT": "1",
            })
            argv = [str(self.rails_dir / "bin" / "web"), "--tag", self._process_tag(name)]
        else:
            env = dict(os.environ)
            env["SANDBOX_APP_DSN"] = psycopg2.extensions.make_dsn(host=pg["host"], port=pg["port"], dbname=database,
                                                                  user=role["user"], password=role["password"])
            env["SANDBOX_REDIS_URL"] = self._stage_redis_url()
            env["SANDBOX_FLAG_BACKEND"] = state.get("flag_backend") or cfg.flag_backend
            env["SANDBOX_FLAGS_FILE"] = str(cfg.flags_file)
            env.update(self._unleash_app_env())
            argv = [str(project_node(required_major=GREEN_NODE_MAJOR)), str(self.typescript_dir / "dist" / "src" / "main.js"),
                    "--color", "green", "--host", cfg.host, "--port", str(port),
                    "--rails-url", self.stage_url("blue"), "--pidfile", str(cfg.run_dir / f"{name}.pid")]
        logfile = self._log_path(name)
        with open(logfile, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting on database {database}: {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=cfg.repo_root, env=env, start_new_session=True)
        self._children[proc.pid] = proc
        (cfg.run_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
        return proc.pid

    def _apply_stage_faults(self, colors: tuple[str, ...]) -> None:
        if not self.stage_faults_file.exists():
            return
        bodies = stage_fault_bodies(json.loads(self.stage_faults_file.read_text()))
        for color in colors:
            for body in bodies.get(color, []):
                url = f"{self.stage_url(color)}/__fault"
                answer = requests.post(url, json=body, timeout=5)
                if answer.status_code != 200:
                    raise SandboxError(f"stage fault {body} on {color} refused: HTTP {answer.status_code} {answer.text[:200]}")
                log.info("stage fault on %s: %s -> %s", color, body, answer.json())

    def _write_stage_pids(self, pids: dict[str, int]) -> None:
        self.stage_instances_file.write_text(json.dumps(pids))

    def _read_stage_pids(self) -> dict[str, int]:
        try:
            return {color: int(pid) for color, pid in json.loads(self.stage_instances_file.read_text()).items()}
        except (FileNotFoundError, ValueError, AttributeError):
            return {}

    def _flush_stage_redis(self) -> None:
        """The jobs the load queued (orders of the copy) must never reach a live worker later."""
        client = redis.Redis(host=self.config.host, port=self.config.redis_port, db=STAGE_REDIS_DB, socket_timeout=2)
        try:
            client.flushdb()
        except redis.RedisError as error:  # Redis already down (sandbox down): nothing left to flush
            log.info("stage Redis database %d not flushed: %s", STAGE_REDIS_DB, error)
        finally:
            client.close()
