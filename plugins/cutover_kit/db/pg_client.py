"""The PostgreSQL client side of backups and restores (no Airflow): connections, DSNs, the
pg_dump / pg_restore of the server's major version, and creating or dropping whole databases.
The password travels to pg_dump / pg_restore in PGPASSWORD, never on a command line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from cutover_kit.db.errors import BackupError

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DUMP_TIMEOUT_SECONDS = 1800


@contextmanager
def connect(dsn: str) -> Iterator[psycopg2.extensions.connection]:
    try:
        conn = psycopg2.connect(dsn, connect_timeout=5, application_name="cutover-backup")
    except psycopg2.Error as error:
        raise BackupError(f"cannot connect to the database: {str(error).strip()}") from error
    try:
        yield conn
    finally:
        conn.close()


def dsn_params(dsn: str) -> dict[str, str]:
    params = psycopg2.extensions.parse_dsn(dsn)
    if not params.get("dbname"):
        raise BackupError("the DSN names no database (dbname)")
    return params


def conninfo(params: Mapping[str, str]) -> str:
    return psycopg2.extensions.make_dsn(**params)


def client_env(params: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = params["password"]
    return env


def client_argv_params(params: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in params.items() if key != "password"}


def client_tool(conn: psycopg2.extensions.connection, tool: str) -> str:
    """Path of pg_dump / pg_restore of the server's major version (older clients refuse newer servers)."""
    major = conn.server_version // 10000
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin/{tool}")]
    if os.environ.get("SANDBOX_PG_BINDIR"):
        candidates.insert(0, Path(os.environ["SANDBOX_PG_BINDIR"]) / tool)
    on_path = shutil.which(tool)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.exists():
            version = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, timeout=10).stdout
            found = re.search(r"(\d+)(?:\.\d+)?", version)
            if found and int(found.group(1)) >= major:
                return str(candidate)
    raise BackupError(f"no {tool} for PostgreSQL {major} (looked in {', '.join(map(str, candidates))}); "
                      f"install postgresql-client-{major}")


def run_pg_restore(pg_restore: str, archive: str, params: Mapping[str, str], *sections: str) -> None:
    """pg_restore the archive file `archive` into params' database: every section, or only `sections`."""
    argv = [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--no-password", "--jobs=2",
            *[f"--section={section}" for section in sections],
            f"--dbname={conninfo(client_argv_params(params))}", archive]
    done = subprocess.run(argv, env=client_env(params), capture_output=True, text=True, timeout=DUMP_TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise BackupError(f"pg_restore into {params['dbname']} failed (exit {done.returncode}): {done.stderr.strip()}")


def create_database_like(conn: psycopg2.extensions.connection, name: str, like: str) -> None:
    """(Re)create `name` empty, with the encoding and locale of `like`."""
    drop_database(conn, name)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = %s", (like,))
        found = cur.fetchone()
        if found is None:
            raise BackupError(f"database {like} does not exist")
        encoding, collate, ctype = found
        cur.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Identifier(name), sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)))


def drop_database(conn: psycopg2.extensions.connection, name: str, attempts: int = 10) -> None:
    """DROP DATABASE, ending the sessions still in it (`conn` in autocommit).

    WITH (FORCE) terminates the other sessions, but refuses a non-superuser when one of them is
    an autovacuum worker (PostgreSQL 15: "must be a member of the role whose process is being
    terminated"). A plain DROP signals autovacuum workers itself and waits for them, so that is
    the fallback; a session that reconnects meanwhile makes it try again."""
    statement = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    with conn.cursor() as cur:
        for attempt in range(1, attempts + 1):
            try:
                cur.execute(statement + sql.SQL(" WITH (FORCE)"))
                return
            except psycopg2.errors.InsufficientPrivilege:
                try:
                    cur.execute(statement)
                    return
                except psycopg2.errors.ObjectInUse:
                    if attempt == attempts:
                        raise
                    time.sleep(0.2)
