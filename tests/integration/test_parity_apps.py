"""Parity between the two real implementations: the Rails app (blue) and the TypeScript app (green),
both on the test sandbox's PostgreSQL and Redis, compared by cutover_kit.parity on the shipped
request set (include/smoke/parity.yaml).

- as shipped, the two apps answer alike under the declared normalisations (timestamps, amount in
  cents and as a decimal, currency), and green answers from its own code (X-Served-By: typescript);
- order 42 changed in the expanded columns only (the sync trigger off for one statement, so only
  green, which reads status_v2 and amount, sees it): parity fails on GET /api/orders/42 and names
  $.status and $.amount with both values, and nothing else;
- green's body_drift fault: every status differs, each line naming its path.

The two apps are the test sandbox's own blue and green (the launcher starts them from what
bootstrap built: Rails' Debian gems, green's dist/ run by the project's Node).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest
import requests

from cutover_kit.parity import Answer, ParityResult, compare, load_parity
from sandbox.launcher import Sandbox

SERVE_TYPESCRIPT = {"X-Cutover-Serve": "typescript"}  # as the smoke DAG asks green

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class RealApps:
    rails: str  # base URLs
    typescript: str
    dsn: str


def sql(dsn: str, statement: str, *params: object) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(statement, params or None)
        rows = cursor.fetchall() if cursor.description else []
    conn.close()
    return rows


@pytest.fixture(scope="module")
def real_apps(sandbox: Sandbox) -> RealApps:
    """The sandbox's blue (Rails) and green (TypeScript), asked directly, never through the router."""
    return RealApps(sandbox.config.app_url("blue"), sandbox.config.app_url("green"), sandbox.dsn())


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
    # Not vacuous: the two renderings do differ, and green adds fields.
    order = requests.get(f"{real_apps.typescript}/api/orders/42", headers=SERVE_TYPESCRIPT, timeout=10).json()
    assert order["created_at"].endswith("Z") and order["currency"] == "USD" and "amount" in order
    assert "amount" not in requests.get(f"{real_apps.rails}/api/orders/42", timeout=10).json()
    green_items = requests.get(f"{real_apps.typescript}/api/orders/42/line_items", headers=SERVE_TYPESCRIPT, timeout=10).json()
    blue_items = requests.get(f"{real_apps.rails}/api/orders/42/line_items", timeout=10).json()
    assert green_items["line_items"] and all("unit_price" in item for item in green_items["line_items"])
    assert not any("unit_price" in item for item in blue_items["line_items"])
    # Green lists order_id in every item, as Rails does (the legacy contract), not only in the envelope.
    assert [item["order_id"] for item in green_items["line_items"]] == [item["order_id"] for item in blue_items["line_items"]]


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
