"""Sticky assignment: a user's color comes from cohorts, then a stable hash bucket; as the share
grows users only move blue -> green, and rollback (0 %) returns everyone to blue."""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cutover_kit.cohorts import (
    BUCKETS,
    color_for_user,
    cohort_map_entries,
    cohorts_on_green,
    on_green_by_share,
    parse_member_lines,
    user_bucket,
    user_id_problem,
)

user_ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
percents = st.integers(min_value=0, max_value=100)


@dataclass(frozen=True)
class Step:
    percent: int
    cohorts: tuple[str, ...] = ()


CALENDAR = (Step(5, ("internal", "beta")), Step(25, ("early_adopters",)), Step(50), Step(100))


def test_bucket_is_crc32_mod_100_as_haproxy_computes_it() -> None:
    # 841265288 is what HAProxy 2.6 answers for req.hdr(X-User-Id),crc32 with "X-User-Id: 42".
    assert zlib.crc32(b"42") == 841265288
    assert user_bucket("42") == 88
    assert user_bucket("ünïcode") == zlib.crc32("ünïcode".encode()) % 100


@pytest.mark.parametrize("bad", ["", None, 42])
def test_bucket_refuses_a_missing_id(bad: object) -> None:
    with pytest.raises(ValueError, match="user id must be a non-empty string"):
        user_bucket(bad)  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(user_ids, percents, percents)
def test_users_only_move_blue_to_green_as_the_share_grows(user_id: str, low: int, high: int) -> None:
    low, high = sorted((low, high))
    if color_for_user(user_id, low) == "green":
        assert color_for_user(user_id, high) == "green"
    if color_for_user(user_id, high) == "blue":
        assert color_for_user(user_id, low) == "blue"


@settings(max_examples=300, deadline=None)
@given(user_ids, st.lists(percents, min_size=2, max_size=6))
def test_a_users_color_is_the_same_on_every_request_of_a_step(user_id: str, steps: list[int]) -> None:
    for percent in steps:
        assert len({color_for_user(user_id, percent) for _ in range(5)}) == 1


def test_monotonic_over_a_hundred_thousand_ids_along_the_calendar() -> None:
    previous = {str(user): "blue" for user in range(100_000)}
    for percent in (1, 5, 25, 50, 100):
        current = {user: color_for_user(user, percent) for user in previous}
        flipped_back = [user for user in previous if previous[user] == "green" and current[user] == "blue"]
        assert flipped_back == []
        share = sum(color == "green" for color in current.values()) / len(current)
        assert abs(share - percent / 100) < 0.005, f"{share:.3%} of users on green at {percent} %"
        previous = current


def test_buckets_are_even_over_numeric_email_and_uuid_like_ids() -> None:
    for ids in ([str(n) for n in range(1, 100_001)], [f"user{n}@example.com" for n in range(100_000)],
                [f"{n:08x}-4b1e-8c2d-9f00-{n * 7919:012x}" for n in range(100_000)]):
        counts = Counter(user_bucket(user) for user in ids)
        assert set(counts) == set(range(BUCKETS))
        assert max(abs(count - 1000) for count in counts.values()) < 120, ids[:2]


def test_cohort_members_are_on_green_from_their_step_on_and_back_on_blue_at_rollback() -> None:
    beta_member = next(str(user) for user in range(1000) if user_bucket(str(user)) == 99)  # last to move by hash
    members = {"internal": ["ops-1"], "beta": [beta_member], "early_adopters": ["ea-7"]}
    for percent, expected_cohorts in ((1, ()), (5, ("internal", "beta")), (25, ("internal", "beta", "early_adopters")),
                                      (50, ("internal", "beta", "early_adopters"))):
        assert cohorts_on_green(CALENDAR, percent) == expected_cohorts
        green_members = set(cohort_map_entries(members, expected_cohorts))
        assert color_for_user(beta_member, percent, green_members) == ("green" if percent >= 5 else "blue")
    assert cohorts_on_green(CALENDAR, 0) == ()
    assert color_for_user(beta_member, 0, {beta_member}) == "blue"  # rollback is never held by a cohort


@settings(max_examples=300, deadline=None)
@given(user_ids, st.booleans())
def test_with_cohorts_users_still_only_move_blue_to_green_along_the_steps(user_id: str, in_beta: bool) -> None:
    members = {"internal": ["ops-1"], "beta": [user_id] if in_beta else ["someone"], "early_adopters": ["ea-7"]}
    colors = [color_for_user(user_id, step.percent, cohort_map_entries(members, cohorts_on_green(CALENDAR, step.percent)))
              for step in CALENDAR]
    assert colors == sorted(colors)  # "blue" < "green": once green, green at every later step
    if in_beta:
        assert set(colors) == {"green"}


def test_map_entries_list_each_user_once_under_the_first_cohort() -> None:
    entries = cohort_map_entries({"internal": ["a", "b"], "beta": ["b", "c"]}, ("internal", "beta"))
    assert entries == {"a": "internal", "b": "internal", "c": "beta"}


def test_map_entries_refuse_an_empty_or_unread_cohort() -> None:
    with pytest.raises(ValueError, match="cohort 'beta' has no members"):
        cohort_map_entries({"beta": []}, ("beta",))
    with pytest.raises(ValueError, match="cohort 'beta': no members were read"):
        cohort_map_entries({"internal": ["a"]}, ("internal", "beta"))


def test_on_green_by_share_is_the_bucket_threshold() -> None:
    assert on_green_by_share("42", 89) and not on_green_by_share("42", 88)


@pytest.mark.parametrize("percent", [-1, 101, 5.5, True])
def test_bad_percent_is_refused(percent: object) -> None:
    with pytest.raises(ValueError, match="green percent must be an integer in 0..100"):
        color_for_user("1", percent)  # type: ignore[arg-type]


def test_member_file_lines() -> None:
    assert parse_member_lines("# beta testers\n17\n\n42  # Ana\n17\n", "beta") == ("17", "42")
    with pytest.raises(ValueError, match="cohort 'beta' has no members"):
        parse_member_lines("# nobody yet\n", "beta")
    with pytest.raises(ValueError, match="cohort 'beta' line 2: 'ana maria' is not 1-128 printable ASCII"):
        parse_member_lines("17\nana maria\n", "beta")


@pytest.mark.parametrize(("user_id", "ok"), [("17", True), ("a@b.c", True), ("x" * 128, True), ("x" * 129, False),
                                             ("a b", False), ("", False), ("é", False), (17, False)])
def test_user_id_problem(user_id: object, ok: bool) -> None:
    assert (user_id_problem(user_id) is None) is ok
