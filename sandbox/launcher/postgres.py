"""PostgreSQL: initdb, start, the `cutover` role and database with the legacy schema and generated
data (then the expand migration with SANDBOX_SCHEMA=expanded), and a clean stop."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from sandbox import datagen
from sandbox.config import SandboxConfig
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.plugins_path import plugins_on_path
from sandbox.launcher.processes import children_of, log_tail

log = logging.getLogger("sandbox")

DB_NAME = DB_USER = "cutover"
# The stage instances' database roles (stages 6 and 7), members of `cutover` so its privileges hold.
STAGE_ROLES = {"blue": "cutover_stage_blue", "green": "cutover_stage_green"}
# The live apps' roles, members of `cutover` like the stage roles: pg_stat_statements tells each
# color's statements apart for the SLO gate (database statement time per color, APM).
APP_ROLES = {"blue": "cutover_app_blue", "green": "cutover_app_green"}
# pg_stat_statements lives in the maintenance database, not in `cutover`: an extension in the app
# database would be in every backup, and a non-superuser (the `cutover` role restoring the
# verified backup into a copy) cannot create it. Its figures are cluster-wide all the same.
STATS_DATABASE = "postgres"
# Loaded in this order into a new database (include/sql/bootstrap): the Rails schema, the jobs' outbox.
BOOTSTRAP_SQL = ("legacy_schema.sql", "outbox.sql")


def migrations_module() -> Any:
    """cutover_kit.db.migrations, with plugins/ put on sys.path if the caller did not."""
    plugins_on_path()
    from cutover_kit.db import migrations

    return migrations



class Postgres:
    config: SandboxConfig
    _state: dict[str, Any] | None
    _running_as_root: bool

    def _pg_bindir(self) -> Path:
        """PostgreSQL's bin dir: SANDBOX_PG_BINDIR, else where pg_ctl on PATH really lives."""
        candidates = []
        if os.environ.get("SANDBOX_PG_BINDIR"):
            candidates.append(Path(os.environ["SANDBOX_PG_BINDIR"]))
        if shutil.which("pg_ctl"):
            candidates.append(Path(shutil.which("pg_ctl")).resolve().parent)
        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
        for candidate in candidates:
            if all((candidate / tool).exists() for tool in ("initdb", "pg_ctl", "psql", "postgres")):
                return candidate
        raise SandboxError("PostgreSQL binaries (initdb, pg_ctl, psql) not found: install the apt package "
                           "postgresql or set SANDBOX_PG_BINDIR")

    def _pg_os_user(self) -> str:
        """PostgreSQL refuses to run as root, so as root it runs as the `postgres` OS user."""
        if self._running_as_root:
            return "postgres"
        return pwd.getpwuid(os.geteuid()).pw_name

    def _pg_argv(self, tool: str, *args: str) -> list[str]:
        argv = [str(self._pg_bindir() / tool), *args]
        return ["runuser", "-u", "postgres", "--", *argv] if self._running_as_root else argv

    def _pg_run(self, tool: str, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        argv = self._pg_argv(tool, *args)
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                                  cwd=self.config.postgres_dir)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"postgres: {tool} did not finish within {timeout:g}s") from None
        if done.returncode != 0:
            raise SandboxError(f"postgres: {tool} failed (exit {done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()}\n{log_tail(self._log_path('postgres'))}")
        return done.stdout

    def _start_postgres(self) -> None:
        cfg = self.config
        for directory in (cfg.postgres_dir, cfg.postgres_socket_dir, cfg.postgres_log_dir):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
        if self._running_as_root:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise SandboxError("running as root but there is no `postgres` OS user to run PostgreSQL "
                                   "(install the apt package postgresql)") from None
            for directory in (cfg.postgres_dir, cfg.postgres_socket_dir, cfg.postgres_log_dir):
                os.chown(directory, entry.pw_uid, entry.pw_gid)
            self._check_postgres_can_write(cfg.postgres_dir)
        self._pg_run("initdb", "-D", str(cfg.postgres_data_dir), "-U", self._state["postgres"]["superuser"],
                     "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
                     "--no-sync", "--no-instructions")
        self._write_postgres_conf()
        logfile = self._log_path("postgres")
        self._pg_run("pg_ctl", "-D", str(cfg.postgres_data_dir), "-l", str(logfile), "-w",
                     "-t", str(int(cfg.ready_timeout_seconds)), "start", timeout=cfg.ready_timeout_seconds + 5)
        pidfile = cfg.postgres_data_dir / "postmaster.pid"
        pid = int(pidfile.read_text().split()[0])
        self._record("postgres", pid, logfile, pidfile)
        self._wait_ready("postgres", self._postgres_accepts_superuser, logfile, pid)

    def _check_postgres_can_write(self, directory: Path) -> None:
        probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(directory)])
        if probe.returncode != 0:
            raise SandboxError(f"the postgres OS user cannot reach {directory}: every parent directory "
                               f"must be world-executable (o+x); set SANDBOX_DIR to such a place")

    def _write_postgres_conf(self) -> None:
        cfg = self.config
        settings = {
            "listen_addresses": f"'{cfg.host}'",
            "port": str(cfg.postgres_port),
            "unix_socket_directories": f"'{cfg.postgres_socket_dir}'",
            "unix_socket_permissions": "0700",  # superuser access only for the OS user running it
            # Two apps x 20 pooled connections, plus checks and the lead's tasks.
            "max_connections": "80",
            "shared_buffers": "64MB",  # small machine: keep memory modest
            # No replicas here: with minimal WAL, the data generator's load into freshly truncated
            # tables writes no WAL (fsync stays on; commits are as durable as in production).
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "max_wal_size": "2GB",  # bulk loads and backfills of ~1M rows without forced checkpoints
            "logging_collector": "off",  # pg_ctl -l already captures the log
            "log_min_messages": "warning",
            # Stage 6's bottleneck hints: the slowest statements per database role.
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.max": "1000",
        }
        lines = ["", "# Added by sandbox.launcher"] + [f"{key} = {value}" for key, value in settings.items()]
        with open(cfg.postgres_data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n".join(lines) + "\n")

    def _postgres_accepts_superuser(self) -> bool:
        self._psql_superuser("SELECT 1;")
        return True

    def _psql_superuser(self, sql: str) -> str:
        """Run SQL as the cluster superuser over the private socket (peer auth, no password)."""
        return self._pg_run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.config.postgres_socket_dir),
                            "-p", str(self.config.postgres_port), "-d", STATS_DATABASE, stdin=sql)

    def _bootstrap_database(self) -> None:
        """Create the `cutover` role and database, load the legacy schema and generated data as that
        role, then (SANDBOX_SCHEMA=expanded, the default) apply the expand migration and backfill."""
        pg = self._state["postgres"]
        password = pg["password"].replace("'", "''")
        # Through stdin, not argv: the password must not show up in `ps`. CREATEDB: backup
        # verification restores into a scratch database, and the last-resort restore swaps databases.
        self._psql_superuser(f"CREATE ROLE {DB_USER} LOGIN CREATEDB PASSWORD '{password}';\n"
                             f"CREATE DATABASE {DB_NAME} OWNER {DB_USER};\n")
        self._create_stage_roles_and_stats()
        self._create_app_roles()
        # The legacy (Rails) schema, then the outbox both apps' jobs write.
        bootstrap_sql = self.config.repo_root / "include" / "sql" / "bootstrap"
        with psycopg2.connect(self.dsn(), connect_timeout=5) as conn, conn.cursor() as cur:
            for name in BOOTSTRAP_SQL:
                cur.execute((bootstrap_sql / name).read_text())
        conn.close()
        report = datagen.generate(self.dsn(), orders=self.config.seed_orders, users=max(1, self.config.seed_orders // 5))
        log.info("postgres ready: database %s seeded with %d users, %d orders, %d line items in %.1fs",
                 DB_NAME, report.users, report.orders, report.line_items, report.seconds)
        if self.config.schema == "expanded":
            migrations = migrations_module()
            done = migrations.migrate_up(self.dsn(), migrations.EXPAND_VERSION, expected_current=migrations.BASE_VERSION)
            filled = migrations.backfill(self.dsn())
            log.info("schema expanded to %s in %.2fs; backfilled %d rows in %.2fs", done.to_version, done.seconds,
                     filled.rows, filled.seconds)

    def _create_stage_roles_and_stats(self) -> None:
        """The stage instances' roles (idempotent: created or their password reset) and
        pg_stat_statements, readable by `cutover` for every role (pg_read_all_stats)."""
        statements = []
        for color, role in STAGE_ROLES.items():
            password = self._state["postgres"]["stage_roles"][color]["password"].replace("'", "''")
            statements.append(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN; END IF; END $$;\n"
                f"ALTER ROLE {role} LOGIN PASSWORD '{password}';\nGRANT {DB_USER} TO {role};\n")
        statements.append(f"GRANT pg_read_all_stats TO {DB_USER};\n"
                          "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n")
        # Through stdin (passwords stay out of `ps`), connected to the maintenance database.
        self._psql_superuser("".join(statements))

    def _create_app_roles(self) -> None:
        """The live apps' roles (idempotent), with `cutover`'s privileges through membership. A
        state from before they existed has no passwords for them: the apps then connect as `cutover`."""
        statements = []
        for color, role in APP_ROLES.items():
            entry = (self._state["postgres"].get("app_roles") or {}).get(color)
            if not entry:
                continue
            password = entry["password"].replace("'", "''")
            statements.append(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN; END IF; END $$;\n"
                f"ALTER ROLE {role} LOGIN PASSWORD '{password}';\nGRANT {DB_USER} TO {role};\n")
        if statements:
            self._psql_superuser("".join(statements))

    def app_login(self, color: str) -> tuple[str, str]:
        """(user, password) the live app of `color` connects as: its own role, else `cutover`."""
        pg = (self._state or self._require_state())["postgres"]
        entry = (pg.get("app_roles") or {}).get(color)
        return (entry["user"], entry["password"]) if entry else (pg["user"], pg["password"])

    def app_dsn(self, color: str) -> str:
        """libpq DSN of the `cutover` database as the live app of `color` connects to it."""
        pg = (self._state or self._require_state())["postgres"]
        user, password = self.app_login(color)
        return psycopg2.extensions.make_dsn(host=pg["host"], port=pg["port"], dbname=pg["dbname"],
                                            user=user, password=password)

    def _stop_postgres(self, info: dict[str, Any] | None) -> bool:
        pidfile = self.config.postgres_data_dir / "postmaster.pid"
        pid = int(info["pid"]) if info else None
        if pid is None and pidfile.exists():
            pid = int(pidfile.read_text().split()[0])
        if pid is None or not self._owned(pid):
            return False
        backends = children_of(pid)
        try:
            # -m fast: roll back open transactions and disconnect clients, but shut down cleanly.
            self._pg_run("pg_ctl", "-D", str(self.config.postgres_data_dir), "-m", "fast", "-w", "-t", "15", "stop",
                         timeout=20)
        except SandboxError as error:
            log.warning("pg_ctl stop failed (%s); killing postmaster %d", error, pid)
            self._terminate(pid)
        for child in backends:  # only ever matters if the postmaster had to be killed
            if self._alive(child):
                self._terminate(child)
        return True

    @staticmethod
    def _dsn_from(state: dict[str, Any]) -> str:
        pg = state["postgres"]
        return psycopg2.extensions.make_dsn(host=pg["host"], port=pg["port"], dbname=pg["dbname"],
                                            user=pg["user"], password=pg["password"])
