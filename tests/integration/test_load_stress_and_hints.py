"""Stage 6's stress phase and bottleneck hints on the real apps: the stage instances connect as
their own database roles, pg_stat_statements returns the statements of a role in the copy,
Prometheus scrapes a stage instance (job stage_apps), and one short Locust run with a stress
step and a recovery phase against the stage green gives figures that the pure judges turn into
a failure mode, a recovery verdict and hint lines."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import psycopg2
import pytest
import requests

from cutover_kit.db.backup import backup_database
from cutover_kit.db.restore import drop_scratch, restore_full_copy
from cutover_kit.load.bottlenecks import bottleneck_block, connection_figures, cpu_figures
from cutover_kit.load.instances import instance_from_connection, start_instance, stop_instance
from cutover_kit.load.knee import LoadSLO, find_knee
from cutover_kit.load.pg_stats import ConnectionSampler, server_limits, slowest_statements
from cutover_kit.load.profile import LoadProfile, Step, StressPhase
from cutover_kit.load.runner import run_locust
from cutover_kit.load.stress import classify_failure, judge_recovery
from sandbox.launcher.postgres import STAGE_ROLES

COPY = "cutover_stage_copy"
# Set to a folder to keep the run's Locust CSVs (how tests/unit/cutover_kit/load/data was recorded).
KEEP_ENV = "CUTOVER_KEEP_LOAD_ARTIFACTS"


@pytest.fixture(scope="module")
def stage(sandbox, tmp_path_factory):
    """Both stage instances up on a full copy of a fresh backup; stopped and dropped afterwards."""
    live = sandbox.dsn()
    record = backup_database(live, tmp_path_factory.mktemp("backup"))
    restore_full_copy(live, record.as_dict(), COPY)
    connections = sandbox.connections()
    instances = {color: instance_from_connection(color, f"app_{color}_loadtest", connections[f"app_{color}_loadtest"]["host"],
                                                 connections[f"app_{color}_loadtest"]["port"], None,
                                                 connections[f"app_{color}_loadtest"]["extra"])
                 for color in ("blue", "green")}
    try:
        for color in ("blue", "green"):
            start_instance(instances[color], COPY)
        yield instances
    finally:
        for color in ("green", "blue"):
            stop_instance(instances[color])
        drop_scratch(live, COPY)


def prometheus(sandbox, promql: str) -> list:
    answer = requests.get(f"{sandbox.config.prometheus_url}/api/v1/query", params={"query": promql}, timeout=5).json()
    return answer["data"]["result"]


def test_stage_instances_use_their_own_roles_seen_by_pg_stat_statements_and_prometheus(sandbox, stage):
    assert stage["green"].database_role == STAGE_ROLES["green"] and stage["blue"].database_role == STAGE_ROLES["blue"]
    for color in ("blue", "green"):
        answer = requests.get(f"{stage[color].url}/api/users/1", headers={"X-Cutover-Serve": "typescript" if color == "green" else "rails"},
                              timeout=10)
        assert answer.status_code in (200, 404), answer.text
    with psycopg2.connect(sandbox.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = %s", (COPY,))
        users = {row[0] for row in cur.fetchall()}
    conn.close()
    assert set(STAGE_ROLES.values()) <= users, f"the copy's sessions belong to {users}"
    # The view is read through the `cutover` role (pg_read_all_stats), filtered by role and copy.
    for color, role in STAGE_ROLES.items():
        statements = slowest_statements(sandbox.dsn(), role, COPY, limit=5)
        assert statements, f"pg_stat_statements has no row for {role} in {COPY}"
        assert all(row["calls"] >= 1 and row["mean_ms"] >= 0 for row in statements)
        assert not any(row["query"].startswith("<insufficient") for row in statements)
    assert slowest_statements(sandbox.dsn(), "cutover_stage_nobody", COPY) == []
    max_connections, role_limit = server_limits(sandbox.dsn(), STAGE_ROLES["green"])
    assert max_connections == 80 and role_limit is None
    # Prometheus scrapes the stage instances under their own job (1 s scrapes).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        up = {sample["metric"]["color"]: sample["value"][1] for sample in prometheus(sandbox, 'up{job="stage_apps"}')}
        if up == {"blue": "1", "green": "1"}:
            break
        time.sleep(0.5)
    assert up == {"blue": "1", "green": "1"}, up
    for color in ("blue", "green"):
        assert prometheus(sandbox, f'process_cpu_seconds_total{{job="stage_apps",color="{color}"}}'), color
    # The live SLO series stay the live apps' own: no stage sample under job="apps".
    assert {s["metric"]["instance"] for s in prometheus(sandbox, 'up{job="apps"}')} == {
        f"{sandbox.config.host}:{sandbox.config.blue_port}", f"{sandbox.config.host}:{sandbox.config.green_port}"}


def test_a_stress_run_on_the_stage_green_gives_a_failure_mode_a_recovery_and_hints(sandbox, stage, tmp_path: Path):
    profile = LoadProfile(target=stage["green"].url, steps=(Step(2, 2), Step(4, 4)), step_seconds=3, max_requests=20000,
                          serve="typescript", stress=StressPhase(users=24, seconds=3, recovery_users=2, recovery_seconds=5))
    slo = LoadSLO(max_p95_ms=500, max_error_ratio=0.01)
    with ConnectionSampler(sandbox.dsn(), STAGE_ROLES["green"], COPY, interval=0.5) as sampler:
        result = run_locust(profile, "green", tmp_path)
    assert sampler.error is None and sampler.samples
    assert [step.users for step in result.steps] == [2, 4]
    assert result.stress is not None and result.stress.users == 24 and result.stress.requests > 0
    assert 3 <= len(result.recovery) <= 5 and all(second.users <= 24 for second in result.recovery)
    assert result.recovery[-1].users == 2
    assert 0 < result.generator_cpu_seconds < result.seconds * 1.5  # one Locust process, at most about a core
    knee = find_knee(result.steps, slo)
    outcome = classify_failure(result.stress, slo, knee)
    assert outcome.failure_mode in ("held", "latency", "errors", "errors and latency")
    recovery = judge_recovery(result.recovery, slo)
    # A healthy green under 2 users is back within a 500 ms p95 at once.
    assert recovery.recovered, recovery.description
    assert recovery.recovery_seconds is not None and recovery.recovery_seconds <= 5
    # CPU from Prometheus over the run, the connections sampled, the role's slowest statements.
    time.sleep(2)  # the last scrape after the run
    matrix = requests.get(f"{sandbox.config.prometheus_url}/api/v1/query_range", timeout=5, params={
        "query": 'sum(rate(process_cpu_seconds_total{job="stage_apps",color="green"}[3s]))',
        "start": result.started_at, "end": result.ended_at, "step": 1}).json()["data"]["result"]
    samples = [(float(t), float(v)) for t, v in matrix[0]["values"]]
    cpu = cpu_figures(samples, (result.start_epoch, result.start_epoch + 6))
    assert 0 < cpu["peak_cores"] < 4
    block = bottleneck_block("green", "typescript", STAGE_ROLES["green"], cpu,
                             connection_figures(sampler.samples, *server_limits(sandbox.dsn(), STAGE_ROLES["green"])),
                             slowest_statements(sandbox.dsn(), STAGE_ROLES["green"], COPY))
    assert block["connections"]["peak_held"] >= 1
    assert block["hints"][0].startswith("green: CPU ") and "cutover_stage_green" in block["hints"][1]
    assert block["hints"][2].startswith("green slowest: ")
    keep = os.environ.get(KEEP_ENV)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(result.artifacts["stats_history_csv"], Path(keep) / "green_stress_stats_history.csv")
        (Path(keep) / "green_stress_hints.txt").write_text("\n".join([outcome.description, recovery.description, *block["hints"]]) + "\n")
