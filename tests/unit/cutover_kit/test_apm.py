"""cutover_kit.apm: the two apps' route dialects meet, statements are classed alike whatever ORM
wrote them, the ranking puts the worst slowdown first, and statement time is judged over a window."""

from __future__ import annotations

import pytest

from cutover_kit import apm


def test_rails_and_node_route_labels_meet():
    assert apm.route_key("get", "/api/users/:id/orders") == apm.route_key("GET", "/api/users/{id}/orders") \
        == "GET /api/users/{id}/orders"
    assert apm.route_key("POST", "/api/orders") == "POST /api/orders"


@pytest.mark.parametrize("query, klass", [
    ('SELECT "orders".* FROM "orders" WHERE "orders"."id" = $1 LIMIT $2', "SELECT orders"),  # ActiveRecord
    ("SELECT id, user_id, amount_cents FROM orders WHERE id = $1", "SELECT orders"),  # hand-written (green)
    ('SELECT 1 AS one FROM "users" WHERE "users"."id" = $1 LIMIT $2', "SELECT users"),
    ('INSERT INTO "line_items" ("order_id", "sku") VALUES ($1, $2) RETURNING "id"', "INSERT line_items"),
    ("insert into public.outbox (kind) values ($1)", "INSERT outbox"),
    ('UPDATE "orders" SET "status" = $1 WHERE "orders"."id" = $2', "UPDATE orders"),
    ("DELETE FROM ONLY sessions WHERE expires_at < now()", "DELETE sessions"),
    ("WITH recent AS (SELECT * FROM orders) SELECT count(*) FROM recent", "SELECT recent"),
    ("SELECT $1", "SELECT (no table)"),
    ("VACUUM orders", "OTHER"),
])
def test_statements_are_classed_by_verb_and_table(query, klass):
    assert apm.statement_class(query) == klass


def test_rank_puts_the_biggest_slowdown_first_and_skips_sub_floor_noise():
    green = {"GET /a": 0.030, "GET /b": 0.012, "GET /c": 0.0011, "GET /only-green": 0.5, "GET /nan": None}
    blue = {"GET /a": 0.010, "GET /b": 0.012, "GET /c": 0.0001, "GET /only-blue": 0.5, "GET /nan": 0.01}
    ranked = apm.rank(green, blue, floor=0.002)
    assert [(slow.name, round(slow.ratio, 2)) for slow in ranked] == [("GET /a", 3.0), ("GET /b", 1.0)]
    assert apm.worst(ranked).name == "GET /a"
    assert apm.worst(apm.rank({"GET /a": 0.01}, {"GET /a": 0.02}, floor=0.0)) is None  # green nowhere slower
    assert apm.worst([]) is None


def test_the_worst_route_and_statement_read_as_one_phrase():
    route = apm.Slowdown("GET /api/orders/{id}", 0.031, 0.012)
    statement = apm.Slowdown("SELECT orders", 0.9, 0.3)
    assert apm.describe_worst(route, statement, "p95") == (
        "APM, slowest vs blue: GET /api/orders/{id} p95 31 ms vs 12 ms (x2.58), "
        "SELECT orders 0.90 ms vs 0.30 ms per statement (x3.00)")
    assert apm.describe_worst(None, None, "p95") is None
    assert route.to_dict() == {"name": "GET /api/orders/{id}", "green": 0.031, "blue": 0.012, "ratio": 2.583}


def test_statement_totals_sum_per_class_and_difference_over_the_window():
    rows = [{"query": 'SELECT "orders".* FROM "orders" WHERE id = $1', "calls": 10, "total_ms": 5.0},
            {"query": "SELECT * FROM orders WHERE user_id = $1", "calls": 30, "total_ms": 15.0},
            {"query": "INSERT INTO orders (a) VALUES ($1)", "calls": 4, "total_ms": 8.0}]
    totals = apm.totals_by_class(rows)
    assert totals == {"SELECT orders": (40.0, 20.0), "INSERT orders": (4.0, 8.0)}
    later = {"SELECT orders": (60.0, 40.0), "INSERT orders": (4.0, 8.0), "UPDATE users": (2.0, 1.0)}
    assert apm.difference(later, totals) == {"SELECT orders": (20.0, 20.0), "UPDATE users": (2.0, 1.0)}
    reset = {"SELECT orders": (5.0, 1.0)}  # pg_stat_statements_reset() between the readings
    assert apm.difference(reset, totals) == {"SELECT orders": (5.0, 1.0)}
    assert apm.mean_ms({"SELECT orders": (20.0, 20.0)}) == {"SELECT orders": 1.0}
    assert apm.overall_mean_ms({"SELECT orders": (20.0, 20.0), "UPDATE users": (5.0, 30.0)}) == (2.0, 25.0)
    assert apm.overall_mean_ms({}) == (None, 0)


def test_the_statement_window_differences_against_the_reading_a_window_ago():
    window = apm.StatementWindow()
    assert window.add(0.0, {"SELECT orders": (10.0, 10.0)}, 10) is None  # no interval yet: no data
    assert window.add(1.0, {"SELECT orders": (12.0, 13.0)}, 10) == {"SELECT orders": (2.0, 3.0)}
    for second in range(2, 12):
        delta = window.add(float(second), {"SELECT orders": (10.0 + 2 * second, 10.0 + 3 * second)}, 10)
    # At t=11 the reading at t=1 (10 s ago) is the window's start.
    assert delta == {"SELECT orders": (20.0, 30.0)}
    assert len(window._readings) == 11  # nothing older than the window's start is kept
