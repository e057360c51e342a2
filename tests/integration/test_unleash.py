"""The Unleash flag backend against a real unleash-server 6.x started by the sandbox launcher.

One sandbox with SANDBOX_FLAG_BACKEND=unleash serves the module (conftest.unleash_sandbox); its
teardown checks that nothing (node included) is left running. Every test writes the absolute
flag state it needs first, so the order of tests does not matter.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cutover_kit.flags.model import FlagsAbsent, FlagState, FlagStoreError, apply_flags
from cutover_kit.flags.unleash_store import FLAG_NAMES, UnleashFlagStore, desired_layout
from cutover_kit.hooks.unleash import UnleashHook
from sandbox.config import PORT_SETTINGS, REPO_ROOT
from sandbox.flags_unleash import UnleashEvaluator
from sandbox.launcher import Sandbox

pytestmark = pytest.mark.timeout(120)

STEP = FlagState({"users": True, "orders": False}, 25, 30)
USERS = range(1, 401)


# ------------------------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    """Seconds until predicate() is true; fails after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unleash_state(sandbox: Sandbox) -> dict[str, Any]:
    return json.loads(sandbox.config.state_file.read_text())["unleash"]


def admin(sandbox: Sandbox, method: str, path: str, body: Any = None) -> requests.Response:
    state = unleash_state(sandbox)
    return requests.request(method, f"{state['url']}{path}", json=body, timeout=5,
                            headers={"Authorization": state["admin_token"]})


def strategies(sandbox: Sandbox, flag: str) -> list[dict[str, Any]]:
    answer = admin(sandbox, "GET", f"/api/admin/projects/default/features/{flag}")
    answer.raise_for_status()
    env = next(env for env in answer.json()["environments"] if env["name"] == "development")
    return env["strategies"]


@pytest.fixture(scope="module")
def store(unleash_sandbox: Sandbox) -> UnleashFlagStore:
    state = unleash_state(unleash_sandbox)
    return UnleashFlagStore(state["url"], state["admin_token"], state["project"], state["environment"])


@pytest.fixture(scope="module")
def evaluator(unleash_sandbox: Sandbox, store: UnleashFlagStore) -> Iterator[UnleashEvaluator]:
    apply_flags(store, FlagState.rails())  # the flags exist before the SDK's first fetch
    state = unleash_state(unleash_sandbox)
    env = {"SANDBOX_UNLEASH_URL": state["url"], "SANDBOX_UNLEASH_CLIENT_TOKEN": state["client_token"],
           "SANDBOX_DIR": str(unleash_sandbox.config.state_dir)}
    with UnleashEvaluator.from_env(env, app_name="cutover-tests") as evaluator:
        # Its SDK cache lives in a directory of its own inside the sandbox's state dir.
        assert evaluator._cache_dir.parent == unleash_sandbox.config.state_dir / "unleash" / "sdk-cache"
        yield evaluator


def sees(evaluator: UnleashEvaluator, state: FlagState) -> Callable[[], bool]:
    """True once the SDK's answers are those of `state` (features and the direct rollout at 0/100)."""
    def check() -> bool:
        features = all(evaluator.feature_on(name, 7, via_router=True) == on for name, on in state.features.items())
        return features and evaluator.rollout_on(7, via_router=True)
    return check


# ------------------------------------------------------------------------------- launcher


def test_launcher_runs_unleash_for_the_apps_and_airflow(unleash_sandbox: Sandbox) -> None:
    state = unleash_state(unleash_sandbox)
    assert unleash_sandbox.status()["unleash"] is True
    assert requests.get(f"{state['url']}/health", timeout=2).json()["health"] == "GOOD"
    conn = unleash_sandbox.connections()["unleash_default"]
    assert conn == {"conn_type": "http", "host": "127.0.0.1", "port": unleash_sandbox.config.unleash_port,
                    "password": state["admin_token"], "extra": {"project": "default", "environment": "development"}}
    # Tokens are generated per up and scoped as Unleash 6 reads them from their prefix.
    assert state["admin_token"].startswith("*:*.") and state["client_token"].startswith("default:development.")
    # Green (TypeScript) evaluates the flags with the Unleash SDK; blue (Rails, the legacy app)
    # evaluates none, so only green gets the SDK's settings.
    environ = Path(f"/proc/{unleash_sandbox.app_pid('green')}/environ").read_bytes().split(b"\0")
    assert f"SANDBOX_UNLEASH_URL={state['url']}".encode() in environ
    assert f"SANDBOX_UNLEASH_CLIENT_TOKEN={state['client_token']}".encode() in environ
    cache = unleash_sandbox.config.state_dir / "unleash" / "sdk-cache"
    assert f"SANDBOX_UNLEASH_CACHE_DIR={cache}".encode() in environ
    blue = requests.get(f"{unleash_sandbox.config.app_url('blue')}/__flags", timeout=2).json()
    assert blue["evaluates_flags"] is False and blue["backend"] is None, blue


def test_cli_without_the_backend_variable_still_sees_unleash(unleash_sandbox: Sandbox) -> None:
    # status/env/down in another shell know the backend from state.json, not from its environment.
    config = unleash_sandbox.config
    env = {"PATH": "/usr/bin:/bin", "SANDBOX_DIR": str(config.state_dir), "PYTHONPATH": str(REPO_ROOT)}
    env.update({PORT_SETTINGS[field][0]: str(port) for field, port in config.ports().items()})
    status = subprocess.run([sys.executable, "-m", "sandbox.launcher", "status"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["unleash"] is True
    exports = subprocess.run([sys.executable, "-m", "sandbox.launcher", "env"], env=env, cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=60).stdout
    assert "export AIRFLOW_CONN_UNLEASH_DEFAULT=" in exports


# ------------------------------------------------------------------------------- the store


def test_write_read_round_trip_and_a_second_write_changes_nothing(unleash_sandbox: Sandbox,
                                                                  store: UnleashFlagStore) -> None:
    store.write(STEP)
    assert store.read() == STEP
    before = {flag: strategies(unleash_sandbox, flag) for flag in FLAG_NAMES}
    store.write(STEP)
    assert store.read() == STEP
    after = {flag: strategies(unleash_sandbox, flag) for flag in FLAG_NAMES}
    assert after == before  # same strategies, same ids: updated in place, nothing added
    layouts = desired_layout(STEP)
    for flag in FLAG_NAMES:
        assert sorted(s["title"] for s in after[flag]) == sorted(layouts[flag].strategies), flag


def test_every_state_change_updates_strategies_in_place(unleash_sandbox: Sandbox, store: UnleashFlagStore) -> None:
    store.write(FlagState.for_step(5))
    ids = {flag: sorted(s["id"] for s in strategies(unleash_sandbox, flag)) for flag in FLAG_NAMES}
    for state in (FlagState.for_step(50, 0), FlagState.rails(100), FlagState({"users": False, "orders": True}, 100, 70)):
        assert apply_flags(store, state) == state
        assert {flag: sorted(s["id"] for s in strategies(unleash_sandbox, flag)) for flag in FLAG_NAMES} == ids


def test_apply_flags_through_the_hook_and_connection(unleash_sandbox: Sandbox, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_UNLEASH_DEFAULT", json.dumps(unleash_sandbox.connections()["unleash_default"]))
    hook_store = UnleashHook().get_conn()
    assert apply_flags(hook_store, FlagState.for_step(50)) == FlagState.for_step(50)
    assert apply_flags(hook_store, FlagState.rails()) == FlagState.rails()


def test_hand_edit_is_reported_by_flag_and_repaired_by_the_next_write(unleash_sandbox: Sandbox,
                                                                     store: UnleashFlagStore) -> None:
    store.write(FlagState.rails())
    extra = {"name": "flexibleRollout", "title": "someone's test", "constraints": [],
             "parameters": {"rollout": "10", "stickiness": "default", "groupId": "x"}}
    added = admin(unleash_sandbox, "POST",
                  "/api/admin/projects/default/features/green.feature.orders/environments/development/strategies", extra)
    assert added.status_code == 200, added.text
    with pytest.raises(FlagStoreError, match="green.feature.orders: strategy 'flexibleRollout' \\(title \"someone's test\""):
        store.read()
    assert apply_flags(store, FlagState.rails()) == FlagState.rails()
    assert [s["title"] for s in strategies(unleash_sandbox, "green.feature.orders")] == ["cutover: everyone"]


def test_disabled_rollout_flag_is_reported_then_re_enabled(unleash_sandbox: Sandbox, store: UnleashFlagStore) -> None:
    store.write(FlagState.for_step(25))
    off = admin(unleash_sandbox, "POST", "/api/admin/projects/default/features/green.rollout/environments/development/off")
    assert off.status_code == 200, off.text
    with pytest.raises(FlagStoreError, match="green.rollout: disabled in environment 'development'"):
        store.read()
    assert apply_flags(store, FlagState.for_step(25)) == FlagState.for_step(25)


def test_archived_flag_is_revived_by_write(unleash_sandbox: Sandbox, store: UnleashFlagStore) -> None:
    store.write(FlagState.rails())
    archived = admin(unleash_sandbox, "DELETE", "/api/admin/projects/default/features/experiment.order_summary")
    assert archived.status_code == 202, archived.text
    # Archived reads as absent (what exists is well-formed): stage 1 passes, the next write revives it.
    with pytest.raises(FlagsAbsent, match="flags missing in Unleash: experiment.order_summary \\(the flags that "
                                          "exist are well-formed: green.feature.users, ") as raised:
        store.read()
    assert raised.value.missing == ["experiment.order_summary"]
    assert apply_flags(store, FlagState.rails(20)) == FlagState.rails(20)


def test_unreachable_server_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    store = UnleashFlagStore(url, "*:*.whatever", timeout_seconds=1)
    for action in (store.read, lambda: store.write(FlagState.rails())):
        with pytest.raises(FlagStoreError, match=f"Unleash at {url} is unreachable \\(connection refused\\)"):
            action()


@pytest.mark.parametrize("token_kind", ["wrong", "client"])
def test_bad_admin_token_is_a_clear_error_and_changes_nothing(unleash_sandbox: Sandbox, store: UnleashFlagStore,
                                                              token_kind: str) -> None:
    store.write(FlagState.rails())
    state = unleash_state(unleash_sandbox)
    token = "*:*.not-a-real-token" if token_kind == "wrong" else state["client_token"]
    bad = UnleashFlagStore(state["url"], token)
    with pytest.raises(FlagStoreError, match=f"Unleash at {state['url']} refused the admin token: HTTP 40[13]"):
        bad.write(FlagState.for_step(100))
    with pytest.raises(FlagStoreError, match="refused the admin token"):
        bad.read()
    assert store.read() == FlagState.rails()


def test_unknown_environment_is_refused_before_any_change(unleash_sandbox: Sandbox, store: UnleashFlagStore) -> None:
    store.write(FlagState.rails())
    state = unleash_state(unleash_sandbox)
    staging = UnleashFlagStore(state["url"], state["admin_token"], environment="staging")
    with pytest.raises(FlagStoreError, match="environment 'staging' does not exist in project 'default' "
                                             "\\(enabled environments: development, production\\)"):
        staging.write(FlagState.for_step(100))
    assert store.read() == FlagState.rails()


# ------------------------------------------------------------------------------- the SDK evaluator


def test_evaluator_sees_a_flip_within_seconds(store: UnleashFlagStore, evaluator: UnleashEvaluator) -> None:
    # Not at once: an earlier test archived and revived a flag on this server, and Unleash serves its
    # client answer per revision, which it re-reads once a second. Seen here: for about a second
    # after the revival the SDK may hold an answer without that flag (2 of 4 runs; then 1.0 s).
    wait_for(lambda: evaluator.flag_names() >= set(FLAG_NAMES), 5, "the SDK to hold every cutover flag")
    for state in (FlagState.for_step(100), FlagState.rails(), FlagState({"users": True, "orders": False}, 0)):
        store.write(state)
        seconds = wait_for(sees(evaluator, state), 5, f"the SDK to serve {state.describe()}")
        assert seconds < 5


def test_evaluator_rollout_semantics(store: UnleashFlagStore, evaluator: UnleashEvaluator) -> None:
    store.write(FlagState.for_step(0))
    wait_for(lambda: not any(evaluator.rollout_on(user, via_router=False) for user in USERS), 5, "rollout 0 %")
    # Through the router green is chosen by HAProxy's weight: the flag is on whatever the percentage.
    assert all(evaluator.rollout_on(user, via_router=True) for user in USERS)
    assert evaluator.rollout_on(None, via_router=True)

    store.write(FlagState.for_step(25))
    wait_for(lambda: 0 < sum(evaluator.rollout_on(user, via_router=False) for user in USERS) < len(USERS), 5,
             "rollout 25 %")
    on = {user for user in USERS if evaluator.rollout_on(user, via_router=False)}
    assert 0.15 * len(USERS) <= len(on) <= 0.35 * len(USERS)
    assert on == {user for user in USERS if evaluator.rollout_on(user, via_router=False)}  # sticky per user
    assert not evaluator.rollout_on(None, via_router=False)  # no user id: no sticky share, so Rails

    store.write(FlagState.for_step(50))
    wait_for(lambda: sum(evaluator.rollout_on(user, via_router=False) for user in USERS) > len(on), 5, "rollout 50 %")
    # Raising the percentage only adds users: nobody who had green loses it.
    assert on <= {user for user in USERS if evaluator.rollout_on(user, via_router=False)}


def test_experiment_is_sticky_per_user(store: UnleashFlagStore, evaluator: UnleashEvaluator) -> None:
    store.write(FlagState.for_step(25, experiment_treatment_percent=0))
    wait_for(lambda: {evaluator.experiment_variant(user) for user in USERS} == {"control"}, 5, "treatment 0 %")

    store.write(FlagState.for_step(25, experiment_treatment_percent=50))
    wait_for(lambda: "treatment" in {evaluator.experiment_variant(user) for user in USERS}, 5, "treatment 50 %")
    first = {user: evaluator.experiment_variant(user) for user in USERS}
    assert 0.35 * len(USERS) <= list(first.values()).count("treatment") <= 0.65 * len(USERS)
    # Same user, same variant: on every call, and after unrelated flags change.
    store.write(FlagState.for_step(75, experiment_treatment_percent=50))
    wait_for(lambda: sum(evaluator.rollout_on(user, via_router=False) for user in USERS) > 0.6 * len(USERS), 5,
             "rollout 75 %")
    assert {user: evaluator.experiment_variant(user) for user in USERS} == first

    store.write(FlagState.for_step(25, experiment_treatment_percent=100))
    wait_for(lambda: {evaluator.experiment_variant(user) for user in USERS} == {"treatment"}, 5, "treatment 100 %")


def test_evaluator_without_a_server_or_with_a_bad_token_serves_rails(unleash_sandbox: Sandbox,
                                                                     store: UnleashFlagStore, tmp_path: Path) -> None:
    store.write(FlagState.for_step(100, experiment_treatment_percent=100))
    state = unleash_state(unleash_sandbox)
    for url, token in ((f"http://127.0.0.1:{free_port()}", state["client_token"]),
                       (state["url"], "default:development.not-a-real-token")):
        with UnleashEvaluator(url, token, cache_root=tmp_path) as blind:
            assert blind.flag_names() == set()
            assert not blind.feature_on("users", 7, via_router=True)
            assert not blind.rollout_on(7, via_router=True)
            assert blind.experiment_variant(7) == "control"
    assert list(tmp_path.iterdir()) == []  # close() removed each evaluator's cache


def test_evaluator_from_env_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="needs SANDBOX_UNLEASH_URL and SANDBOX_UNLEASH_CLIENT_TOKEN"):
        UnleashEvaluator.from_env({})
    with pytest.raises(ValueError, match="needs SANDBOX_UNLEASH_CLIENT_TOKEN"):
        UnleashEvaluator.from_env({"SANDBOX_UNLEASH_URL": "http://127.0.0.1:14242"})


def test_running_apps_follow_unleash_flags_per_feature(unleash_sandbox: Sandbox, store: UnleashFlagStore,
                                                        use_connections) -> None:
    """The apps themselves (not just an SDK in the test) evaluate the Unleash flags per request."""
    use_connections(unleash_sandbox)
    green = unleash_sandbox.config.app_url("green")

    def served_by(path: str) -> str:
        return requests.get(f"{green}{path}", timeout=2).headers["X-Served-By"]

    def green_reports(state: FlagState) -> bool:
        report = requests.get(f"{green}/__flags", timeout=2).json()
        return report.get("backend") == "unleash" and report.get("serves_rails") == state.all_rails

    apply_flags(store, FlagState.rails())
    wait_for(lambda: served_by("/api/users/3") == "rails", 5, "green forwarding users to Rails")
    # Users on at 100 % rollout, orders off: each feature area follows its own Unleash flag.
    apply_flags(store, FlagState({"users": True, "orders": False}, 100))
    wait_for(lambda: served_by("/api/users/3") == "typescript", 5, "users area on green's own code")
    assert served_by("/api/users/3/orders") == "rails"

    # The stage callables verify in the store and in every app's own report, with this backend too.
    from cutover_kit.actions.flags import apply_everywhere
    from cutover_kit.hooks.flags import flag_store
    from cutover_kit.hooks.levers import app_reports

    facts = apply_everywhere(FlagState.rails(), "unleash", flag_store, app_reports, timeout_seconds=10)
    assert facts["store"].startswith("unleash") or "unleash" in facts["store"], facts
    assert served_by("/api/users/3") == "rails" and green_reports(FlagState.rails())


# Must stay last: it takes the module's sandbox down (the fixture's own down() is then a no-op).
def test_up_again_only_verifies_and_down_stops_unleash(unleash_sandbox: Sandbox, evaluator: UnleashEvaluator,
                                                       no_leftovers: Callable) -> None:
    evaluator.close()  # its poller would otherwise keep knocking on a stopped server
    pids = {name: info["pid"] for name, info in json.loads(unleash_sandbox.config.state_file.read_text())["components"].items()}
    again = unleash_sandbox.up()
    assert {name: info["pid"] for name, info in again["components"].items()} == pids
    stopped = unleash_sandbox.down()
    assert set(stopped) == {"postgres", "redis", "unleash", "webhooks", "alertmanager", "sentry", "blue_worker", "blue", "green",
                            "haproxy", "prometheus"}
    no_leftovers(unleash_sandbox.config)  # no node process, nothing on the Unleash port
    assert unleash_sandbox.status() == dict.fromkeys(("postgres", "redis", "unleash", "webhooks", "alertmanager", "sentry",
                                                      "blue_worker", "blue", "green", "haproxy", "prometheus"), False)
