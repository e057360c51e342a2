"""Parity between the two real implementations: the Rails app (blue) and the TypeScript app (green),
both on the test sandbox's PostgreSQL and Redis, compared by cutover_kit.parity on the shipped
request set (include/smoke/parity.yaml).

- as shipped, the two apps answer alike under the declared normalisations (timestamps, amount in
  cents and as a decimal, currency), and green answers from its own code (X-Served-By: typescript);
- order 42 changed in the expanded columns only (the sync trigger off for one statement, so only
  green, which reads status_v2 and amount, sees it): parity fails on GET /api/orders/42 and names
  $.status and $.amount with both values, and nothing else;
- green's body_drift fault: every status differs, each line naming its path.

Skipped, with the reason, when an app is not built here (TypeScript: npm ci && npm run build;
Rails: Debian gems resolving with bundle install --local). The sandbox's own Python demo apps keep
running beside them; nothing is sent to them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest
import requests

from cutover_kit.parity import Answer, ParityResult, compare, load_parity
from sandbox.launcher import Sandbox

REPO = Path(__file__).resolve().parents[2]
RAILS_DIR = REPO / "sandbox" / "apps" / "rails"
TS_DIR = REPO / "sandbox" / "apps" / "typescript"
TS_MAIN = TS_DIR / "dist" / "src" / "main.js"
OUTBOX_SQL = REPO / "include" / "sql" / "bootstrap" / "outbox.sql"
SERVE_TYPESCRIPT = {"X-Cutover-Serve": "typescript"}  # as the smoke DAG asks green
# Rails boots in 5-15 s on the loaded 2-core machine (its README); generous, but bounded.
READY_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 15

pytestmark = pytest.mark.timeout(600)


def _why_not_runnable() -> str | None:
    if not TS_MAIN.is_file():
        return f"TypeScript app not built ({TS_MAIN.relative_to(REPO)} missing): cd {TS_DIR.relative_to(REPO)} && npm ci && npm run build"
    if shutil.which("node") is None:
        return "node is not on PATH: the TypeScript app cannot start"
    if shutil.which("bundle") is None:
        return "bundle is not on PATH: the Rails app needs ruby and its Debian gems (see sandbox/apps/rails/README.md)"
    check = subprocess.run(["bundle", "check"], cwd=RAILS_DIR, capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        return f"the Rails app's gems do not resolve (bundle check: {check.stdout.strip() or check.stderr.strip()})"
    return None


_SKIP_REASON = _why_not_runnable()
if _SKIP_REASON:
    pytestmark = [pytestmark, pytest.mark.skip(reason=_SKIP_REASON)]


@dataclass(frozen=True)
class RealApps:
    rails: str  # base URLs
    typescript: str
    dsn: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(name: str, url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode} before /readyz answered:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{name} not ready on {url}/readyz within {READY_TIMEOUT_SECONDS}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group this test started (bin/web execs Puma), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def sql(dsn: str, statement: str, *params: object) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(statement, params or None)
        rows = cursor.fetchall() if cursor.description else []
    conn.close()
    return rows


@pytest.fixture(scope="module")
def real_apps(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealApps]:
    work = tmp_path_factory.mktemp("real-apps")
    dsn = sandbox.dsn()
    sql(dsn, OUTBOX_SQL.read_text())  # the jobs' outbox tables (idempotent); the parity reads do not touch them
    pg = psycopg2.extensions.parse_dsn(dsn)
    redis_url = f"redis://127.0.0.1:{sandbox.config.redis_port}/0"
    rails_port, ts_port = free_port(), free_port()
    rails_env = dict(os.environ, PGHOST=pg["host"], PGPORT=str(pg["port"]), PGDATABASE=pg["dbname"], PGUSER=pg["user"],
                     PGPASSWORD=pg["password"], REDIS_URL=redis_url, PORT=str(rails_port),
                     PIDFILE=str(work / "rails.pid"), METRICS_DIR=str(work / "rails-metrics"))
    rails_env.pop("DATABASE_URL", None)
    ts_env = dict(os.environ, SANDBOX_APP_DSN=dsn, SANDBOX_REDIS_URL=redis_url, SANDBOX_FLAGS_FILE=str(sandbox.config.flags_file))
    rails_url, ts_url = f"http://127.0.0.1:{rails_port}", f"http://127.0.0.1:{ts_port}"
    started: list[subprocess.Popen] = []
    try:
        started.append(start(["bin/web"], RAILS_DIR, rails_env, work / "rails.log"))
        started.append(start(["node", str(TS_MAIN), "--color", "green", "--host", "127.0.0.1", "--port", str(ts_port),
                              "--rails-url", rails_url, "--pidfile", str(work / "ts.pid")], TS_DIR, ts_env, work / "ts.log"))
        wait_ready("Rails app", rails_url, started[0], work / "rails.log")
        wait_ready("TypeScript app", ts_url, started[1], work / "ts.log")
        yield RealApps(rails_url, ts_url, dsn)
    finally:
        for process in reversed(started):
            stop(process)


def run_parity(apps: RealApps) -> list[ParityResult]:
    """Each shipped parity request to Rails and to the TypeScript app, judged as the smoke DAG does."""
    spec = load_parity()
    results = []
    for request in spec.requests:
        answers = []
        for url, headers in ((apps.rails, {}), (apps.typescript, SERVE_TYPESCRIPT)):
            response = requests.request(request.method, url + request.path, headers=headers, timeout=10)
            answers.append(Answer(response.status_code, response.json(), None, response.headers.get("x-served-by")))
        assert answers[0].served_by == "rails" and answers[1].served_by == "typescript", request.label
        results.append(compare(request, answers[0], answers[1], spec.ignore_for(request)))
    return results


def differing_lines(results: list[ParityResult]) -> list[str]:
    return [line for result in results for line in result.lines]


def test_rails_and_typescript_answer_alike_on_the_shipped_request_set(real_apps: RealApps) -> None:
    results = run_parity(real_apps)
    assert differing_lines(results) == []
    assert len(results) >= 5 and all(result.ok for result in results)
    # Not vacuous: the renderings do differ from the Python demo app's, and green adds fields.
    order = requests.get(f"{real_apps.typescript}/api/orders/42", headers=SERVE_TYPESCRIPT, timeout=10).json()
    assert order["created_at"].endswith("Z") and order["currency"] == "USD" and "amount" in order
    assert "amount" not in requests.get(f"{real_apps.rails}/api/orders/42", timeout=10).json()


@pytest.fixture
def order_42_changed_in_new_columns_only(real_apps: RealApps) -> Iterator[dict]:
    """Order 42's status_v2 and amount changed with the sync trigger off (one transaction), so the
    legacy columns Rails reads keep their values; restored from the legacy columns afterwards."""
    [(status, cents)] = sql(real_apps.dsn, "SELECT status, amount_cents FROM orders WHERE id = 42")
    other = "cancelled" if status != "cancelled" else "refunded"
    change = ("ALTER TABLE orders DISABLE TRIGGER orders_sync_shapes; "
              "UPDATE orders SET status_v2 = %s, amount = amount + 0.01 WHERE id = 42; "
              "ALTER TABLE orders ENABLE TRIGGER orders_sync_shapes")
    sql(real_apps.dsn, change, other)
    try:
        yield {"status": status, "cents": cents, "green_status": other}
    finally:
        sql(real_apps.dsn, "UPDATE orders SET status_v2 = status::order_status, amount = round(amount_cents / 100.0, 2) "
                           "WHERE id = 42")


def test_a_difference_only_green_sees_fails_parity_naming_each_path(real_apps: RealApps,
                                                                     order_42_changed_in_new_columns_only: dict) -> None:
    before = order_42_changed_in_new_columns_only
    green_amount = f"{(before['cents'] + 1) / 100:.2f}"
    results = run_parity(real_apps)
    assert [result.request.label for result in results if not result.ok] == ["GET /api/orders/42"]
    assert differing_lines(results) == [
        f'GET /api/orders/42: $.amount: blue {before["cents"]} cents ($.amount_cents) != green "{green_amount}"',
        f'GET /api/orders/42: $.amount_cents: blue {before["cents"]} != green {before["cents"] + 1}',
        f'GET /api/orders/42: $.status: blue "{before["status"]}" != green "{before["green_status"]}"',
    ]


@pytest.fixture
def green_drifts(real_apps: RealApps) -> Iterator[None]:
    fault = f"{real_apps.typescript}/__fault"
    assert requests.post(fault, json={"body_drift": True}, timeout=5).json()["body_drift"] is True
    try:
        yield
    finally:
        assert requests.delete(fault, timeout=5).json()["body_drift"] is False


def test_green_body_drift_names_every_status_path(real_apps: RealApps, green_drifts: None) -> None:
    lines = differing_lines(run_parity(real_apps))
    blue_order = requests.get(f"{real_apps.rails}/api/orders/42", timeout=10).json()
    assert f'GET /api/orders/42: $.status: blue "{blue_order["status"]}" != green "{blue_order["status"].upper()}"' in lines
    assert any(line.startswith("GET /api/users/42/orders: $.orders[0].status: blue ") for line in lines)
    assert all("$.status" in line or ".status: " in line for line in lines), lines
