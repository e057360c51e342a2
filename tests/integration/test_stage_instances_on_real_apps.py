"""Stage instances for real: a full copy of a verified backup, the sandbox's extra blue and green
started through the commands its Connections carry, a write on the stage green that lands in the
copy and never in the live database, and everything stopped and dropped afterwards."""

from __future__ import annotations

import psycopg2
import redis
import requests

from cutover_kit.db.backup import backup_database
from cutover_kit.db.restore import drop_scratch, restore_full_copy
from cutover_kit.load.instances import instance_from_connection, start_instance, stop_instance
from sandbox.launcher.stage_instances import STAGE_REDIS_DB

COPY = "cutover_stage_copy"


def count_orders(dsn: str) -> int:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        found = cur.fetchone()[0]
    conn.close()
    return found


def test_stage_instances_serve_a_copy_and_leave_the_live_database_and_workers_alone(sandbox, tmp_path):
    live = sandbox.dsn()
    record = backup_database(live, tmp_path)
    copy = restore_full_copy(live, record.as_dict(), COPY)
    connections = sandbox.connections()
    instances = {color: instance_from_connection(color, f"app_{color}_loadtest", connections[f"app_{color}_loadtest"]["host"],
                                                 connections[f"app_{color}_loadtest"]["port"], None,
                                                 connections[f"app_{color}_loadtest"]["extra"])
                 for color in ("blue", "green")}
    try:
        for color in ("blue", "green"):
            started = start_instance(instances[color], COPY)
            assert started["started_by_stage"] and started["database"] == COPY
        live_orders, copy_orders = count_orders(live), count_orders(copy)
        answer = requests.post(f"{instances['green'].url}/api/orders", json={"user_id": 1, "amount_cents": 1234},
                               headers={"X-Cutover-Serve": "typescript"}, timeout=10)
        assert answer.status_code == 201 and answer.headers["X-Served-By"] == "typescript", answer.text
        user = requests.post(f"{instances['blue'].url}/api/users", json={"email": "stage@example.test"}, timeout=10)
        assert user.status_code == 201, user.text
        assert count_orders(copy) == copy_orders + 1
        assert count_orders(live) == live_orders, "a stage instance wrote into the live database"
        # The live instances are still the ones behind the router, untouched.
        assert requests.get(f"{sandbox.config.app_url('green')}/readyz", timeout=5).status_code == 200
    finally:
        for color in ("green", "blue"):
            stop_instance(instances[color])
        drop_scratch(live, COPY)
    for color in ("blue", "green"):
        try:
            requests.get(f"{instances[color].url}/healthz", timeout=1)
            raise AssertionError(f"the {color} stage instance still answers after stage-down")
        except requests.ConnectionError:
            pass
    # The jobs the stage instances queued are gone with them; none reached the live queue's database.
    assert redis.Redis(host=sandbox.config.host, port=sandbox.config.redis_port, db=STAGE_REDIS_DB).dbsize() == 0
    with psycopg2.connect(live) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (COPY,))
        assert cur.fetchone() is None
    conn.close()
