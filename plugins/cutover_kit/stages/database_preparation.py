"""Stage 2, database preparation (task group ``stage_02_database_preparation``): schema version
check, verified backup, expand migration, batched backfill, then Great Expectations validation of
the expanded schema against the backup. Every task sets absolute state: the expand is a no-op when
already applied, the backfill only fills NULLs. The way back (down migration) is stage
``database_rollback`` (:mod:`cutover_kit.stages.database_rollback`).

Validation (``validate_with_great_expectations`` runs :func:`validate_expanded_database`, which
calls :func:`validate_migration` with :func:`snapshot_from_backup`):

* :func:`snapshot_from_backup` -> ``{table: {"count": n, "max_id": m}}`` from a backup record's
  dump-time fingerprints, which were taken in the dump's own snapshot: the row counts and the
  checksums then bound the pre-existing rows at the same moment. :func:`row_counts` takes the same
  dict from a live database (one snapshot, counted in PostgreSQL).
* :func:`restore_backup_for_validation` restores the verified backup into a scratch database that
  stays in place for the checksum comparison (``db.restore.restore_to_scratch``);
  :func:`drop_backup_scratch` removes it afterwards.

Both apps keep inserting during stage 2, so the checks compare the pre-existing rows only: rows
with id <= the snapshot's max_id must number exactly the snapshot's count (a lost or extra row
among them fails; rows above are new and allowed), and the legacy-column checksums cover rows with
id <= max_id on both sides (see ``include/gx/suites.py``). The old ``{table: count}`` snapshot shape
is still accepted: without a max_id the count covers the whole table.
* :func:`validate_migration` runs the suites of ``include/gx/suites.py`` (users, orders,
  line_items), logs one line per expectation, writes the results to the artifact directory and
  fails the task (AirflowFailException, no retry) naming every failed expectation.

Why one ``@task`` and not one ``GXValidateBatchOperator`` per table
-------------------------------------------------------------------
* The operator's ``configure_expectations(context)`` receives only the GX context. The row counts
  come from a task of the same run, so a per-table operator would need a subclass with an extra
  templated field to get them into its expectations.
* Three operators mean three task processes, each importing great_expectations (6-9 s, ~230 MB
  each, measured here). One task imports it once and validates all three tables in ~the time the
  SQL takes.
* The operator raises GXValidationFailed, an AirflowException, so Airflow would retry a data
  defect; here a defect is an AirflowFailException (no retry), a lost connection still retries.
* The operator logs nothing per expectation and lists only failed expectation *types*.

The task still runs the provider's code path: ``load_data_context`` and
``run_validation_definition`` from ``great_expectations_provider.common.gx_context_actions`` are
exactly what ``GXValidateBatchOperator.execute`` calls (see ``cutover_kit.validation``).

Connections: the live database is ``conn_id`` (default ``postgres_default``). The backup copy is
``backup_conn_id`` when given, else the live Connection with its database (schema) replaced by
``backup_database``. URLs are built with SQLAlchemy's escaping, not the provider's f-string (which
turns an empty password into the text "None").
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit import connections
from cutover_kit.db.schema_versions import BASE_VERSION, EXPAND_VERSION
from cutover_kit.paths import REPO_ROOT
from cutover_kit.stages._shared import connection_dsn, connection_url

log = logging.getLogger(__name__)

BACKUP_DIR_ENV = "CUTOVER_BACKUP_DIR"
ARTIFACT_ENV = "CUTOVER_GX_ARTIFACT_DIR"  # base directory; the run id is appended
DEFAULT_ARTIFACT_ROOT = REPO_ROOT / ".artifacts" / "gx"
DEFAULT_SCRATCH_DB = "cutover_gx_backup"
TABLES = ("users", "orders", "line_items")


# --------------------------------------------------------------------------------------------
# Snapshot and backup copy


Snapshot = dict[str, dict[str, Any]]  # {table: {"count": n, "max_id": m or None}}


def row_counts(dsn: str, tables: Sequence[str] = TABLES) -> Snapshot:
    """{table: {"count": n, "max_id": m}}: the n rows with id <= m are the table's rows now (m is
    the settled bound of ``db.fingerprints.row_snapshot``, normally max(id))."""
    from cutover_kit.db.fingerprints import row_snapshot

    snapshot = row_snapshot(dsn, tables)
    log.info("Row counts before the migration: %s", _describe_snapshot(snapshot))
    return snapshot


def snapshot_from_backup(record: Mapping[str, Any], tables: Sequence[str] = TABLES) -> Snapshot:
    """{table: {"count", "max_id"}} from a BackupRecord (dict) taken before the migration: its
    fingerprints were computed in the dump's own snapshot, so they describe the rows of that moment.
    A record from before max_id was recorded gives max_id None (the count then covers the table)."""
    fingerprints = record.get("fingerprints") or {}
    missing = [table for table in tables if table not in fingerprints]
    if missing:
        raise AirflowFailException(f"the backup record has no fingerprint for {', '.join(missing)}")
    snapshot: Snapshot = {}
    for table in tables:
        entry = fingerprints[table]
        max_id = entry.get("max_id")
        count = entry.get("count_to_max_id", entry["count"]) if max_id is not None else entry["count"]
        snapshot[table] = {"count": int(count), "max_id": None if max_id is None else int(max_id)}
    log.info("Row counts at the backup: %s", _describe_snapshot(snapshot))
    return snapshot


def _describe_snapshot(snapshot: Mapping[str, Mapping[str, Any]]) -> str:
    return ", ".join(f"{table} {entry['count']}"
                     + ("" if entry.get("max_id") is None else f" (ids <= {entry['max_id']})")
                     for table, entry in snapshot.items())


def restore_backup_for_validation(record: Mapping[str, Any], conn_id: str = connections.POSTGRES,
                                  scratch_db: str = DEFAULT_SCRATCH_DB) -> str:
    """Restore the backup file of `record` into `scratch_db` (re-created) on the live server and
    keep it for the checksum comparison. Returns the scratch database's name."""
    from cutover_kit.db.errors import BackupUnusable
    from cutover_kit.db.restore import restore_to_scratch

    try:
        restore_to_scratch(connection_dsn(conn_id), record, scratch_db)
    except BackupUnusable as error:  # a bad file stays bad: no retry
        raise AirflowFailException(f"backup not usable for validation: {error}") from error
    log.info("Backup %s restored into %s for the checksum comparison", record.get("path"), scratch_db)
    return scratch_db


# States in which the restore task never started, so it cannot have created the scratch database.
NEVER_STARTED = (None, "upstream_failed", "skipped", "removed")


def drop_backup_scratch(conn_id: str = connections.POSTGRES, scratch_db: str = DEFAULT_SCRATCH_DB,
                        restore_task_id: str | None = None) -> None:
    """Drop the validation scratch database, whatever validation said (ALL_DONE). Skipped when
    this run's restore never started (a run refused in stage 1 touches nothing, not even this)."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowSkipException

    from cutover_kit.db.restore import drop_scratch

    if restore_task_id:
        ti = get_current_context()["ti"]
        state = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {}).get(restore_task_id)
        if state in NEVER_STARTED:
            raise AirflowSkipException(f"Nothing to drop: {restore_task_id} never ran in this run (state {state})")
    drop_scratch(connection_dsn(conn_id), scratch_db)


# --------------------------------------------------------------------------------------------
# Validation


def artifact_dir_for(run_id: str | None, base: str | Path | None = None) -> Path:
    """<base>/<run id>; base = argument, else $CUTOVER_GX_ARTIFACT_DIR, else <repo>/.artifacts/gx."""
    root = Path(base or os.environ.get(ARTIFACT_ENV) or DEFAULT_ARTIFACT_ROOT)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id or "manual").strip("._") or "manual"
    return root / safe


def validate_migration(snapshot: Mapping[str, Any] | None = None, *, conn_id: str = connections.POSTGRES,
                       backup_conn_id: str | None = None, backup_database: str | None = None,
                       tables: Sequence[str] | None = None, artifact_dir: str | None = None,
                       run_id: str | None = None,
                       backup_max_ids: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """Validate the expanded database; fail the task naming every failed expectation.

    `snapshot`: {table: {"count", "max_id"}} before the migration, or the old {table: count}
    (row-count checks; None skips them). Backup comparison: `backup_conn_id`, or `backup_database`
    on the live Connection's server; neither skips the checksum checks. `backup_max_ids`: the
    backup's {table: max id} when known (:func:`backup_max_ids_of`), saving a scan of the copy.
    Returns the summary (small, for XCom).
    """
    live_url = connection_url(conn_id)
    backup_url = None
    if backup_conn_id:
        backup_url = connection_url(backup_conn_id)
    elif backup_database:
        backup_url = connection_url(conn_id, database=backup_database)
    if run_id is None:
        run_id = _current_run_id()
    return validate_and_report(live_url, backup_url=backup_url, snapshot=snapshot, tables=tables,
                               out_dir=artifact_dir_for(run_id, artifact_dir), backup_max_ids=backup_max_ids)


def backup_max_ids_of(record: Mapping[str, Any], tables: Sequence[str] = TABLES) -> dict[str, int | None] | None:
    """{table: max_id} from a BackupRecord's fingerprints (the bound its rows were settled at,
    see ``db.fingerprints.row_snapshot``), or None for a record from before max_id was recorded."""
    fingerprints = record.get("fingerprints") or {}
    if not all("max_id" in (fingerprints.get(table) or {}) for table in tables):
        return None
    return {table: fingerprints[table]["max_id"] for table in tables}


def validate_and_report(live_url: str, *, backup_url: str | None, snapshot: Mapping[str, Any] | None,
                        tables: Sequence[str] | None, out_dir: Path,
                        backup_max_ids: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """The Airflow-free core of :func:`validate_migration` (tests call it with URLs directly)."""
    from cutover_kit import validation

    try:
        results, summary = validation.timed_validation(live_url, backup_url=backup_url, snapshot=snapshot,
                                                       tables=tables, backup_max_ids=backup_max_ids)
    except Exception as error:
        # Could not validate at all (database unreachable, ...): retryable, unlike a data defect.
        raise AirflowException(f"GX validation could not run: {error}") from error
    for line in summary.lines:
        (log.info if line.startswith("PASS") else log.error)(line)
    paths = validation.save_artifacts(results, out_dir, summary)
    log.info("GX validation: %d expectations, %d failed, %.2f s; results in %s", summary.expectations,
             summary.failed, summary.seconds, paths[0])
    report = {**summary.as_dict(), "artifacts": [str(path) for path in paths]}
    if summary.failed:
        raise AirflowFailException(
            f"GX validation failed: {summary.failed} of {summary.expectations} expectations: "
            + "; ".join(line.split(" ", 1)[1] for line in summary.lines if not line.startswith("PASS")))
    return report


def _current_run_id() -> str | None:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()["run_id"]
    except Exception:  # noqa: BLE001 - outside a task (tests, CLI): a fixed name
        return None


# --------------------------------------------------------------------------------------------
# Version, backup, expand, backfill (in run order)


def check_schema_version(conn_id: str = connections.POSTGRES) -> dict[str, Any]:
    import psycopg2

    from cutover_kit.db.migrations import current_version

    with psycopg2.connect(connection_dsn(conn_id)) as conn:
        version = current_version(conn)
    if version not in (BASE_VERSION, EXPAND_VERSION):
        raise AirflowFailException(
            f"Database is at version {version}, expected {BASE_VERSION} (legacy) or {EXPAND_VERSION} (already expanded)"
        )
    state = "legacy, expand pending" if version == BASE_VERSION else "already expanded (re-run)"
    reason = f"Database at version {version}: {state}"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "version": version}


def backup_before_migration(conn_id: str = connections.POSTGRES) -> dict[str, Any]:
    """pg_dump -Fc of the live database, restored into a scratch database and compared with the
    dump-time fingerprints before the migration may proceed (``db.verify.verify_backup``: the whole
    archive listed, tables and rows restored). Returns the backup record."""
    from airflow.sdk import get_current_context

    from cutover_kit.db.backup import backup_database
    from cutover_kit.db.errors import BackupError
    from cutover_kit.db.verify import verify_backup

    run_id = get_current_context()["run_id"]
    backup_dir = Path(os.environ.get(BACKUP_DIR_ENV) or REPO_ROOT / ".artifacts" / "backups") / run_id.replace(":", "_").replace("+", "_")
    dsn = connection_dsn(conn_id)
    try:
        record = backup_database(dsn, backup_dir)
        # The apps keep writing: the live database cannot equal the dump, so only "the file restores
        # exactly what was dumped" decides, and a second full pass over the live tables is skipped.
        verification = verify_backup(dsn, record, compare_live=False)
    except BackupError as error:
        raise AirflowException(f"Backup failed: {error}") from error
    if not verification.restored_matches_dump:
        raise AirflowFailException(f"Backup {record.path} does not restore to what was dumped: {verification.mismatches}")
    reason = (
        f"Backup {record.path} ({record.bytes / 1e6:.1f} MB, sha256 {record.sha256[:12]}): "
        f"{verification.archive_entries} archive entries listed, tables and rows restored into a scratch "
        f"database and matched the dump's per-table counts and checksums in {verification.seconds:.1f} s"
    )
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "verified": True, **record.as_dict()}


def expand_schema(conn_id: str = connections.POSTGRES) -> dict[str, Any]:
    from cutover_kit.db.migrations import MigrationError, migrate_up

    try:
        report = migrate_up(connection_dsn(conn_id), EXPAND_VERSION, expected_current=BASE_VERSION)
    except MigrationError as error:
        raise AirflowFailException(f"Expand refused: {error}") from error
    reason = (
        f"Expand {EXPAND_VERSION} already applied (no-op)" if report.noop
        else f"Expand {report.from_version} -> {report.to_version} applied in {report.seconds:.2f} s"
    )
    log.info(reason)
    # `applied`: this run changed the schema, so a failed stage 2 has something of its own to undo.
    return {"verdict": "PASS", "reason": reason, "applied": not report.noop}


def backfill_new_columns(conn_id: str = connections.POSTGRES) -> dict[str, Any]:
    """The batched backfill, then VACUUM (ANALYZE) of the rewritten tables, so that validation
    reads live rows with fresh statistics (``migrations.vacuum_analyze`` says why)."""
    from cutover_kit.db.migrations import backfill, vacuum_analyze

    dsn = connection_dsn(conn_id)
    report = backfill(dsn)
    if not report.complete:
        raise AirflowException(f"Backfill incomplete: {report.remaining} rows still NULL; retrying")
    vacuum_seconds = vacuum_analyze(dsn)
    reason = (
        f"Backfill: {report.rows} rows in {report.batches} batches, {report.seconds:.1f} s, "
        f"longest batch {report.max_batch_seconds * 1000:.0f} ms; VACUUM ANALYZE {vacuum_seconds:.1f} s"
    )
    log.info(reason)
    return {"verdict": "PASS", "reason": reason}


def validate_expanded_database(backup_record: dict[str, Any], scratch_db: str, conn_id: str = connections.POSTGRES) -> dict[str, Any]:
    """Great Expectations on the expanded database, against the backup's dump-time snapshot and a
    scratch restore of the backup. On failure the summary is kept in XCom for the halt record."""
    from airflow.sdk import get_current_context

    snapshot = snapshot_from_backup(backup_record)
    try:
        summary = validate_migration(snapshot, conn_id=conn_id, backup_database=scratch_db,
                                     backup_max_ids=backup_max_ids_of(backup_record))
    except AirflowFailException as error:
        get_current_context()["ti"].xcom_push(key="validation_failure", value={"reason": str(error)})
        raise
    return {"verdict": "PASS", "reason": f"GX: {summary['expectations']} expectations passed in {summary['seconds']:.1f} s", **summary}


# --------------------------------------------------------------------------------------------
# The schema change as a Kubernetes pod, for deployments whose workers should not reach the
# database themselves (or should not carry psycopg2): a KubernetesPodOperator that runs
# `python -m cutover_kit.db.migrate_job <step>` in the project's Airflow image, with the database
# DSN from a Kubernetes Secret. Not wired into `cutover`: the DAG's expand_schema task does the same
# in the worker. docs/kubernetes.md shows the two lines that swap it in.

MIGRATION_STEPS = ("expand", "backfill")
# Where the project's code sits in its Airflow image (deploy/docker/, the images change): the root
# for include/, plugins/ for cutover_kit.
IMAGE_PYTHONPATH = "/opt/airflow:/opt/airflow/plugins"


def migration_pod_operator(
    *,
    step: str = "expand",
    image: str,
    namespace: str = "airflow",
    secret_name: str = "cutover-database",
    secret_key: str = "dsn",
    service_account_name: str = "cutover-migration",
    kubernetes_conn_id: str = connections.KUBERNETES,
    **operator_kwargs: Any,
) -> Any:
    """A KubernetesPodOperator running stage 2's `step` (expand | backfill) once, in a pod that
    exits 0 when the database is in the wanted state. Nothing is contacted here (no cluster, no
    Connection): the pod is only built when the task runs, or by ``dry_run()``."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    from cutover_kit.db.migrate_job import DSN_ENV

    if step not in MIGRATION_STEPS:
        raise ValueError(f"migration step must be one of {', '.join(MIGRATION_STEPS)}; got {step!r}")
    if not image or ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        # An untagged image is whatever :latest is when the pod starts: a migration must be pinned.
        raise ValueError(f"migration image must carry a tag or digest; got {image!r}")
    operator_kwargs.setdefault("task_id", f"{'expand_schema' if step == 'expand' else 'backfill_new_columns'}_pod")
    return KubernetesPodOperator(
        kubernetes_conn_id=kubernetes_conn_id,
        namespace=namespace,
        name=f"cutover-migration-{step}",
        image=image,
        image_pull_policy="IfNotPresent",
        cmds=["python", "-m", "cutover_kit.db.migrate_job"],
        arguments=[step],
        env_vars=[k8s.V1EnvVar(name="PYTHONPATH", value=IMAGE_PYTHONPATH)],
        # The DSN (with its password) reaches the container from the Secret, never the pod spec.
        secrets=[Secret(deploy_type="env", deploy_target=DSN_ENV, secret=secret_name, key=secret_key)],
        labels={"app.kubernetes.io/part-of": "cutover", "app.kubernetes.io/component": f"migration-{step}"},
        service_account_name=service_account_name,
        automount_service_account_token=False,
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "256Mi"}, limits={"cpu": "1", "memory": "512Mi"}),
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=50000, run_as_group=0,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault")),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False, read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"])),
        # A migration that hangs on a lock must end: the task then fails and retries (idempotent).
        active_deadline_seconds=1800,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",  # a failed pod stays for `kubectl logs`
        **operator_kwargs,
    )
