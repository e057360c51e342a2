"""Routing by user against the real HAProxy 2.6 (the sandbox's template, two minimal color apps):
cohort members always on green, a user's color fixed within a step and only ever blue -> green as
the share grows, HAProxy's choice equal to cutover_kit.cohorts' model, anonymous requests on the
weights, and the cohort map swapped atomically through the runtime API and read back."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from cutover_kit.cohorts import USER_ID_HEADER, color_for_user, user_bucket
from cutover_kit.routing import RouterError
from sandbox.standalone_router import StandaloneRouter, standalone_router

pytestmark = pytest.mark.timeout(180)

USERS = [str(user) for user in range(1, 301)]


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneRouter]:
    with standalone_router(tmp_path_factory.mktemp("cohort-router")) as started:
        yield started


@pytest.fixture(autouse=True)
def by_user_then_back_to_blue(router: StandaloneRouter) -> Iterator[None]:
    router.runtime.set_user_routing(True)
    yield
    router.runtime.set_green_percent(0)
    router.runtime.clear_cohort_map()


def colors_of(router: StandaloneRouter, users: list[str], requests_each: int = 1) -> dict[str, set[str]]:
    """Every color that served each user, over `requests_each` requests per user on one keep-alive connection."""
    seen: dict[str, set[str]] = {user: set() for user in users}
    connection = router.connection()
    try:
        for _ in range(requests_each):
            for user in users:
                seen[user].add(router.color_for({USER_ID_HEADER: user}, connection))
    finally:
        connection.close()
    return seen


def test_haproxy_routes_every_user_as_the_python_model_predicts(router: StandaloneRouter) -> None:
    for percent in (5, 25, 50):
        router.runtime.set_green_percent(percent)
        seen = colors_of(router, USERS)
        mismatches = {user: (colors, color_for_user(user, percent)) for user, colors in seen.items()
                      if colors != {color_for_user(user, percent)}}
        assert mismatches == {}, f"at {percent} %: HAProxy vs model {dict(list(mismatches.items())[:5])}"


def test_no_user_flips_within_a_step_and_users_only_move_blue_to_green(router: StandaloneRouter) -> None:
    previous = {user: "blue" for user in USERS}
    for percent in (1, 5, 25, 50, 100):
        router.runtime.set_green_percent(percent)
        seen = colors_of(router, USERS, requests_each=3)
        flipped = {user: colors for user, colors in seen.items() if len(colors) != 1}
        assert flipped == {}, f"users served by both colors within the {percent} % step: {flipped}"
        current = {user: colors.pop() for user, colors in seen.items()}
        back_to_blue = [user for user in USERS if previous[user] == "green" and current[user] == "blue"]
        assert back_to_blue == [], f"green -> blue when the share grew to {percent} %: {back_to_blue}"
        previous = current
    assert set(previous.values()) == {"green"}


def test_cohort_members_always_land_on_green_and_return_to_blue_on_rollback(router: StandaloneRouter) -> None:
    # Members whose bucket is high: the hash alone would keep them on blue until 100 %.
    members = [user for user in (str(n) for n in range(1000, 5000)) if user_bucket(user) >= 90][:20]
    update = router.runtime.replace_cohort_map({user: "beta" for user in members})
    assert update.entries == 20 and router.runtime.read_cohort_map() == {user: "beta" for user in members}
    router.runtime.set_green_percent(5)
    assert colors_of(router, members, requests_each=5) == {user: {"green"} for user in members}
    non_members = [user for user in USERS if user_bucket(user) >= 5][:50]
    assert colors_of(router, non_members, requests_each=2) == {user: {"blue"} for user in non_members}
    router.runtime.set_green_percent(0)  # rollback: one lever, cohort members included
    assert colors_of(router, members, requests_each=2) == {user: {"blue"} for user in members}


def test_users_of_a_green_in_maintenance_fall_back_to_blue(router: StandaloneRouter) -> None:
    on_green = [user for user in USERS if color_for_user(user, 50) == "green"][:20]
    router.runtime.replace_cohort_map({on_green[0]: "beta"})
    router.runtime.set_green_percent(50)
    assert colors_of(router, on_green) == {user: {"green"} for user in on_green}
    try:
        assert router.runtime.command("set server app/green state maint").strip() == ""
        assert colors_of(router, on_green) == {user: {"blue"} for user in on_green}
    finally:
        router.runtime.command("set server app/green state ready")
        deadline = time.monotonic() + 10  # the next tests need green UP again (health checks: rise 2)
        while router.runtime.server_states()["green"] != "UP" and time.monotonic() < deadline:
            time.sleep(0.1)


def test_requests_without_a_user_follow_the_weights(router: StandaloneRouter) -> None:
    router.runtime.set_green_percent(25)
    connection = router.connection()
    try:
        served = Counter(router.color_for({}, connection) for _ in range(200))
        served_empty = Counter(router.color_for({USER_ID_HEADER: ""}, connection) for _ in range(200))
    finally:
        connection.close()
    # Weighted round robin at 75/25: exact over whole rounds, +-1 for where the round started.
    for counts in (served, served_empty):
        assert abs(counts["green"] - 50) <= 1 and counts["blue"] + counts["green"] == 200, counts


def test_with_routing_by_user_off_identified_users_follow_the_weights_as_before(router: StandaloneRouter) -> None:
    router.runtime.replace_cohort_map({"5": "beta"})
    assert router.runtime.set_user_routing(False) is False and not router.runtime.user_routing_enabled()
    router.runtime.set_green_percent(50)
    seen = colors_of(router, ["5"], requests_each=40)
    assert seen == {"5": {"blue", "green"}}  # per request, cohort map or not
    router.runtime.set_user_routing(True)
    assert router.runtime.user_routing_enabled()
    assert colors_of(router, ["5"], requests_each=10) == {"5": {"green"}}


def test_a_big_map_is_swapped_atomically_in_several_payloads_and_read_back(router: StandaloneRouter) -> None:
    entries = {f"user-{n:06d}": ("internal" if n % 10 == 0 else "beta") for n in range(20_000)}
    update = router.runtime.replace_cohort_map(entries)
    assert update.entries == 20_000 and update.payloads > 1
    assert router.runtime.read_cohort_map() == entries
    smaller = {"user-000001": "early_adopters"}
    assert router.runtime.replace_cohort_map(smaller).version > update.version
    assert router.runtime.read_cohort_map() == smaller  # the old entries are gone with the old version


def test_single_members_are_added_moved_and_read_back(router: StandaloneRouter) -> None:
    router.runtime.replace_cohort_map({"7": "internal"})
    router.runtime.set_cohort_member("8", "beta")       # add map
    router.runtime.set_cohort_member("7", "beta")       # set map
    assert router.runtime.read_cohort_map() == {"7": "beta", "8": "beta"}
    assert router.runtime.cohort_of("8") == "beta" and router.runtime.cohort_of("9") is None
    router.runtime.remove_cohort_member("7")            # del map
    router.runtime.remove_cohort_member("9")            # absent: nothing to do
    assert router.runtime.read_cohort_map() == {"8": "beta"}
    assert router.runtime.clear_cohort_map().entries == 0 and router.runtime.read_cohort_map() == {}


@pytest.mark.parametrize(("entries", "expected"), [
    ({"7\nclear map x": "beta"}, "user id '7\\\\nclear map x' is not 1-128 printable ASCII"),
    ({"ana maria": "beta"}, "is not 1-128 printable ASCII characters without spaces"),
    ({"7": "beta testers"}, "cohort 'beta testers' for user '7' is not a cohort name"),
])
def test_entries_that_could_break_the_runtime_api_are_refused_before_sending(
        router: StandaloneRouter, entries: dict[str, str], expected: str) -> None:
    router.runtime.replace_cohort_map({"1": "beta"})
    with pytest.raises(RouterError, match=expected):
        router.runtime.replace_cohort_map(entries)
    assert router.runtime.read_cohort_map() == {"1": "beta"}


def test_an_unknown_map_is_a_clear_error(router: StandaloneRouter) -> None:
    import dataclasses

    wrong = dataclasses.replace(router.runtime, cohort_map="/nowhere/cohorts.map")
    with pytest.raises(RouterError, match="refused 'prepare map /nowhere/cohorts.map'"):
        wrong.replace_cohort_map({"1": "beta"})
    with pytest.raises(RouterError, match="no cohort map configured"):
        dataclasses.replace(router.runtime, cohort_map=None).read_cohort_map()
