"""Backups of the shared database (no Airflow): :func:`backup_database` runs ``pg_dump -Fc`` (the
client of the server's major version, uncompressed by default: :data:`DUMP_COMPRESSION`) on a
snapshot it exported itself, and fingerprints every table **in that same snapshot**. The record
therefore says exactly what the file contains, even while both apps keep writing. Proving it
restorable is :mod:`cutover_kit.db.verify`; the last-resort restore is :mod:`cutover_kit.db.restore`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any

from cutover_kit.db.errors import BackupError
from cutover_kit.db.fingerprints import all_tables, fingerprints_in_transaction, settle_id_bounds
from cutover_kit.db.pg_client import (DUMP_TIMEOUT_SECONDS, client_argv_params, client_env, client_tool, conninfo,
                                      connect, dsn_params)

# pg_dump's gzip level. 0: on 2 cores gzip -1 cost ~5 s of 12 for the 1M-order database (87 MB
# compressed, 337 MB not); PostgreSQL 15's pg_dump has no cheaper compressor (lz4/zstd: 16+).
DUMP_COMPRESSION = 0


@dataclass(frozen=True)
class BackupRecord:
    path: str
    bytes: int
    sha256: str
    created_at: str  # ISO 8601, UTC: when the dump's snapshot was taken
    database: str = ""
    schema_version: str = ""
    # table -> {"count", "checksum"} over all columns, taken in the dump's own snapshot; tables with
    # an integer id also carry "max_id" (the settled bound of the rows the dump holds, normally
    # max(id); see "Pre-existing rows" in cutover_kit.db.fingerprints) and "count_to_max_id" (rows with id <= max_id).
    # Records written before max_id existed lack both.
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackupRecord:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def backup_database(dsn: str, backup_dir: Path | str, compress: int = DUMP_COMPRESSION) -> BackupRecord:
    """pg_dump -Fc into `backup_dir` (gzip level `compress`, 0 = none); the record carries size,
    sha256 and dump-time fingerprints."""
    started = time.monotonic()
    params = dsn_params(dsn)
    directory = Path(backup_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with connect(dsn) as conn:
        pg_dump = client_tool(conn, "pg_dump")
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot(), now() AT TIME ZONE 'UTC', "
                        "(SELECT coalesce(max(version), '') FROM schema_migrations)")
            snapshot, taken_at, schema_version = cur.fetchone()
        created_at = taken_at.replace(tzinfo=timezone.utc).isoformat(timespec="seconds")
        stamp = taken_at.strftime("%Y%m%dT%H%M%SZ")
        final = directory / f"{params['dbname']}-{stamp}-{schema_version or 'noversion'}.dump"
        partial = final.with_suffix(".dump.partial")
        argv = [pg_dump, "--format=custom", f"--compress={int(compress)}", f"--snapshot={snapshot}", "--no-password",
                f"--file={partial}", f"--dbname={conninfo(client_argv_params(params))}"]
        # pg_dump reads the same snapshot while this transaction (which must stay open) fingerprints it.
        dump = subprocess.Popen(argv, env=client_env(params), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            fingerprints = fingerprints_in_transaction(conn, {table: None for table in all_tables(conn)})
            for table, bound in settle_id_bounds(conn, dsn, fingerprints).items():
                if "max_id" in fingerprints[table]:
                    fingerprints[table].update(bound)
            _, stderr = dump.communicate(timeout=DUMP_TIMEOUT_SECONDS)
        except BaseException:
            dump.kill()
            dump.wait()
            partial.unlink(missing_ok=True)
            raise
        conn.rollback()
    if dump.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed (exit {dump.returncode}): {stderr.strip()}")
    _fsync(partial)
    os.replace(partial, final)
    return BackupRecord(path=str(final), bytes=final.stat().st_size, sha256=_sha256(final), created_at=created_at,
                        database=params["dbname"], schema_version=schema_version, fingerprints=fingerprints,
                        seconds=round(time.monotonic() - started, 3))


def methods_of(record: BackupRecord) -> dict[str, str]:
    """How each table of `record` was fingerprinted (records from before "hash" used text)."""
    return {table: entry.get("hash", "text") for table, entry in record.fingerprints.items()}


def file_problems(record: BackupRecord) -> list[str]:
    path = Path(record.path)
    if not path.is_file():
        return [f"backup file {path} is missing"]
    problems = []
    if path.stat().st_size != record.bytes:
        problems.append(f"backup file {path} has {path.stat().st_size} bytes, the record says {record.bytes}")
    elif _sha256(path) != record.sha256:
        problems.append(f"backup file {path} does not match its recorded sha256 (corrupted or replaced)")
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
