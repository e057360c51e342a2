"""Feature flags in the running apps (file backend): green switches between its own code and
Rails per feature area when the flag file changes, forwarded requests carry blue's answer, the
experiment is sticky, and the stage callables verify flags in the store and in every app.

Real sandbox (PostgreSQL, HAProxy, Prometheus, both apps) on the test ports; nothing mocked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from cutover_kit.flags.flagd_file import FlagdFileStore
from cutover_kit.flags.model import FlagState, apply_flags
from cutover_kit.hooks.haproxy import HAProxyHook

pytestmark = pytest.mark.timeout(120)

OWN_CODE = {"X-Cutover-Serve": "typescript"}


@pytest.fixture(autouse=True)
def connections(sandbox, use_connections):
    use_connections(sandbox)
    yield
    HAProxyHook().set_green_percent(0)
    apply_flags(FlagdFileStore(sandbox.config.flags_file), FlagState.rails())
    wait_for(lambda: flags_of(sandbox, "green")["serves_rails"], 3, "green back on Rails")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def flags_of(sandbox, color: str) -> dict:
    return requests.get(f"{sandbox.config.app_url(color)}/__flags", timeout=2).json()


def served_by(sandbox, path: str, headers: dict | None = None, color: str = "green") -> str:
    return requests.get(f"{sandbox.config.app_url(color)}{path}", headers=headers, timeout=2).headers["X-Served-By"]


def counter(sandbox, name: str, **labels: str) -> float:
    text = requests.get(f"{sandbox.config.app_url('green')}/metrics", timeout=2).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_apps_start_at_the_rails_default_and_report_it_on_loopback_only(sandbox):
    green, blue = flags_of(sandbox, "green"), flags_of(sandbox, "blue")
    assert green["backend"] == "file" and green["provider_status"] == "READY" and green["evaluates_flags"]
    assert green["features"] == {"users": False, "orders": False} and green["serves_rails"]
    assert (green["rollout_percent"], green["experiment_treatment_percent"]) == (0, 50)
    assert green["source"] == str(sandbox.config.flags_file)
    assert blue == {"color": "blue", "evaluates_flags": False, "backend": None,
                    "features": {"users": False, "orders": False}, "serves_rails": True}
    assert FlagdFileStore(sandbox.config.flags_file).read() == FlagState.rails()
    spoofed = requests.get(f"{sandbox.config.app_url('green')}/__flags", headers={"X-Forwarded-For": "10.1.1.1"}, timeout=2)
    assert spoofed.status_code == 403


def test_forwarded_request_returns_blues_answer_and_is_counted_apart_from_greens_own_code(sandbox):
    green, blue = sandbox.config.app_url("green"), sandbox.config.app_url("blue")
    own_before = counter(sandbox, "http_requests_total", route="/api/users/{id}")
    forwarded_before = counter(sandbox, "http_forwarded_requests_total", route="/api/users/{id}", status_code="200")
    with requests.Session() as http:
        via_green = http.get(f"{green}/api/users/5", timeout=2)
        direct_blue = http.get(f"{blue}/api/users/5", timeout=2)
        assert via_green.status_code == 200 and via_green.json() == direct_blue.json()
        assert via_green.headers["X-Served-By"] == "rails" and via_green.headers["X-App-Color"] == "green"
        missing = http.get(f"{green}/api/users/999999999", timeout=2)
        assert missing.status_code == 404 and missing.json() == http.get(f"{blue}/api/users/999999999", timeout=2).json()
        # A write through green while orders are on Rails is blue's write: blue's status, blue's id.
        created = http.post(f"{green}/api/orders", json={"user_id": 5, "amount_cents": 4321}, headers={"X-User-Id": "5"}, timeout=2)
        assert created.status_code == 201 and created.headers["X-Served-By"] == "rails"
        order = http.get(f"{blue}/api/orders/{created.json()['id']}", timeout=2).json()
        assert (order["user_id"], order["amount_cents"]) == (5, 4321)
        # Bad input is Rails' answer too.
        bad = http.post(f"{green}/api/orders", json={"user_id": "x", "amount_cents": 1}, timeout=2)
        assert bad.status_code == 400 and "user_id" in bad.json()["error"] and bad.headers["X-Served-By"] == "rails"
        # Many forwarded requests in a row ride on pooled keep-alive connections (no per-request connect).
        started = time.perf_counter()
        assert all(http.get(f"{green}/api/users/6", timeout=2).status_code == 200 for _ in range(50))
        per_request_ms = (time.perf_counter() - started) * 1000 / 50
    assert counter(sandbox, "http_requests_total", route="/api/users/{id}") == own_before
    assert counter(sandbox, "http_forwarded_requests_total", route="/api/users/{id}", status_code="200") - forwarded_before == 51
    assert per_request_ms < 100, f"{per_request_ms:.1f} ms per forwarded request"


def test_flag_flip_switches_green_per_feature_within_a_second(sandbox):
    store = FlagdFileStore(sandbox.config.flags_file)
    user_path, orders_path = "/api/users/3", "/api/users/3/orders"
    assert served_by(sandbox, user_path) == served_by(sandbox, orders_path) == "rails"

    # Users on at 100 % rollout, orders still off: each area follows its own flag.
    written = time.monotonic()
    apply_flags(store, FlagState({"users": True, "orders": False}, 100))
    wait_for(lambda: served_by(sandbox, user_path) == "typescript", 1.0, "users area on green's own code")
    switch_seconds = time.monotonic() - written
    assert served_by(sandbox, orders_path) == "rails"
    own = requests.get(f"{sandbox.config.app_url('green')}{user_path}", timeout=2)
    assert own.json()["id"] == 3 and own.headers["X-App-Color"] == "green"

    # Rails again: both areas forwarded within a second, without touching the router.
    written = time.monotonic()
    apply_flags(store, FlagState.rails())
    wait_for(lambda: served_by(sandbox, user_path) == "rails", 1.0, "users area back on Rails")
    assert flags_of(sandbox, "green")["serves_rails"]
    print(f"flag flip seen by green in {switch_seconds * 1000:.0f} ms, back in {(time.monotonic() - written) * 1000:.0f} ms")


def test_rollout_share_is_sticky_for_direct_callers_and_total_through_the_router(sandbox):
    apply_flags(FlagdFileStore(sandbox.config.flags_file), FlagState.for_step(25))
    wait_for(lambda: flags_of(sandbox, "green")["rollout_percent"] == 25, 1.0, "green to load rollout 25 %")
    users = range(1, 201)
    first = {user: served_by(sandbox, f"/api/users/{user}", {"X-User-Id": str(user)}) for user in users}
    again = {user: served_by(sandbox, f"/api/users/{user}", {"X-User-Id": str(user)}) for user in users}
    assert first == again, "the same user always lands on the same side"
    share = sum(side == "typescript" for side in first.values()) / len(first)
    assert 0.15 < share < 0.35, f"{share:.0%} of direct users on green's code at a 25 % rollout"
    # Through the router every request green gets is green's own: the router already chose it.
    HAProxyHook().set_green_percent(100)
    with requests.Session() as http:
        answers = [http.get(f"{sandbox.config.router_url}/api/users/{user}", headers={"X-User-Id": str(user)}, timeout=2)
                   for user in range(1, 41)]
        # A client cannot force the side through the router: HAProxy strips X-Cutover-Serve.
        forced = http.get(f"{sandbox.config.router_url}/api/users/1", headers={"X-Cutover-Serve": "rails"}, timeout=2)
    assert {(a.headers["X-Backend-Server"], a.headers["X-Served-By"]) for a in answers} == {("green", "typescript")}
    assert forced.headers["X-Served-By"] == "typescript"


def test_experiment_variant_is_sticky_by_user(sandbox):
    apply_flags(FlagdFileStore(sandbox.config.flags_file), FlagState.for_step(100, experiment_treatment_percent=50))
    wait_for(lambda: flags_of(sandbox, "green")["features"]["orders"], 1.0, "orders on green")

    def variant(user: int) -> str:
        answer = requests.get(f"{sandbox.config.app_url('green')}/api/users/{user}/orders",
                              headers={"X-User-Id": str(user), **OWN_CODE}, timeout=2)
        assert answer.status_code == 200 and answer.headers["X-Served-By"] == "typescript"
        return answer.headers["X-Experiment-Order-Summary"]

    variants = {user: variant(user) for user in range(1, 61)}
    assert set(variants.values()) == {"control", "treatment"}
    assert all(variant(user) == seen for user, seen in list(variants.items())[:20])


def test_stage_callables_verify_in_the_store_and_every_app(sandbox):
    from cutover_kit.actions.flags import apply_everywhere, flags_to_rails_now
    from cutover_kit.actions.rollback import restore_blue_now
    from cutover_kit.hooks.flags import flag_store
    from cutover_kit.hooks.levers import app_reports, connected_levers

    facts = apply_everywhere(FlagState.for_step(50), "file", flag_store, app_reports)
    assert facts["apps"] == "app_blue rails (no flags), app_green typescript for users+orders"
    assert facts["propagation_seconds"] < 1.0 and facts["verified_at"] >= facts["store_verified_at"]
    assert flags_of(sandbox, "green")["rollout_percent"] == 50

    HAProxyHook().set_green_percent(50)
    decided_at = time.time()
    reflex = restore_blue_now(connected_levers(), "file")
    assert decided_at <= reflex["flags_restored_at"] <= reflex["traffic_restored_at"]
    assert reflex["flags_restored_at"] - decided_at < 1.0, "flip -> every app serves Rails within a second"
    assert reflex["weights_after_rollback"] == {"blue": 100, "green": 0}
    assert served_by(sandbox, "/api/users/2", {"X-User-Id": "2"}) == "rails"
    # Idempotent: asking again changes nothing and still verifies.
    assert "flags_restored_at" in flags_to_rails_now("file", flag_store, app_reports)


def test_unknown_backend_and_unusable_store_are_reported_not_half_applied(sandbox, monkeypatch, tmp_path):
    from cutover_kit.flags.model import FlagStoreError
    from cutover_kit.actions.flags import apply_everywhere, flags_to_rails_now
    from cutover_kit.hooks.flags import flag_store
    from cutover_kit.hooks.levers import app_reports

    with pytest.raises(FlagStoreError, match="unknown flag backend 'flagsmith'"):
        apply_everywhere(FlagState.rails(), "flagsmith", flag_store, app_reports)
    # The store is written but green reads another file: the apps' disagreement is named, not ignored.
    other = tmp_path / "elsewhere.json"
    monkeypatch.setenv("AIRFLOW_CONN_FLAGD_DEFAULT", json.dumps({"conn_type": "flagd", "extra": {"path": str(other)}}))
    apply_flags(FlagdFileStore(sandbox.config.flags_file), FlagState.rails())
    with pytest.raises(FlagStoreError, match="app_green: green.feature.users evaluates off, want on"):
        apply_everywhere(FlagState.for_step(25), "file", flag_store, app_reports, timeout_seconds=0.3)
    assert FlagdFileStore(other).read() == FlagState.for_step(25)
    # The reflex never raises: it reports, so the traffic level still runs.
    other.write_text("{broken")
    monkeypatch.setenv("AIRFLOW_CONN_FLAGD_DEFAULT", json.dumps({"conn_type": "flagd", "extra": {"path": str(tmp_path / "x" / "y")}}))
    (tmp_path / "x").write_text("a file where a directory should be")
    assert "cannot write in" in flags_to_rails_now("file", flag_store, app_reports)["flags_restore_error"]
