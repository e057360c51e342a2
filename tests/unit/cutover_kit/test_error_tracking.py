"""cutover_kit.error_tracking: new exception types on green as a gate input (pure)."""

from __future__ import annotations

import pytest

from cutover_kit.error_tracking import (
    ErrorTrackingPolicy, judge_new_exception_types, type_name, with_error_tracking,
)
from cutover_kit.slo import Judgement, Verdict

REPORT = ErrorTrackingPolicy()
FAIL = ErrorTrackingPolicy(fail_on_new_exception_types=True)
SLO_PASS = Judgement(Verdict.PASS, "green 5xx 0.0% <= 1.0%")


@pytest.mark.parametrize("raw, name", [
    ("Cutover::InjectedFaultError", "InjectedFaultError"), ("InjectedFaultError", "InjectedFaultError"),
    ("psycopg2.errors.UniqueViolation", "UniqueViolation"), ("ActiveRecord::RecordNotFound", "RecordNotFound"),
])
def test_types_compare_by_unqualified_name(raw, name):
    assert type_name(raw) == name


def test_a_type_blue_raised_earlier_in_the_run_is_not_new_even_across_languages():
    judged = judge_new_exception_types({"InjectedFaultError": 40}, {"Cutover::InjectedFaultError": 2}, FAIL)
    assert judged.new_types == {} and not judged.fails
    assert judged.reason == "no new exception type on green (green raised InjectedFaultError x40, known from blue)"


def test_a_new_type_is_reported_with_its_count_and_fails_only_when_the_plan_says_so():
    green = {"TypeError": 7, "InjectedFaultError": 3}
    blue = {"Cutover::InjectedFaultError": 1}
    reported = judge_new_exception_types(green, blue, REPORT)
    assert reported.new_types == {"TypeError": 7} and not reported.fails
    assert reported.reason == ("new exception types on green that blue has not raised this run: TypeError x7; "
                               "reported only (plan: fail_on_new_exception_types false)")
    failing = judge_new_exception_types(green, blue, FAIL)
    assert failing.fails and failing.reason.endswith("TypeError x7; FAIL (plan: fail_on_new_exception_types)")
    assert failing.to_dict()["new_types"] == {"TypeError": 7}


def test_below_min_events_is_seen_not_new_and_ignored_types_are_dropped():
    policy = ErrorTrackingPolicy(fail_on_new_exception_types=True, min_events=3, ignore=("RecordNotFound",))
    judged = judge_new_exception_types({"TypeError": 2, "NotFoundError": 9, "ActiveRecord::RecordNotFound": 50},
                                       {"NotFoundError": 1}, policy)
    assert judged.new_types == {} and judged.below_min_events == {"TypeError": 2} and not judged.fails
    assert "below min_events 3: TypeError x2" in judged.reason
    assert "RecordNotFound" not in judged.green_types
    crossed = judge_new_exception_types({"TypeError": 3}, {}, policy)
    assert crossed.fails and crossed.new_types == {"TypeError": 3}


def test_nothing_from_green_says_so():
    assert judge_new_exception_types({}, {"KeyError": 4}, FAIL).reason == "no exception reported by green in the window"


def test_folding_into_the_poll_a_failing_type_fails_any_verdict_and_names_it():
    failing = judge_new_exception_types({"TypeError": 5}, {}, FAIL)
    folded = with_error_tracking(SLO_PASS, failing, None, FAIL)
    assert folded.verdict is Verdict.FAIL
    assert folded.breaches == ("new exception types: TypeError x5",)
    assert folded.reason.startswith("green 5xx 0.0% <= 1.0%; new exception types on green")
    reported = with_error_tracking(SLO_PASS, judge_new_exception_types({"TypeError": 5}, {}, REPORT), None, REPORT)
    assert reported.verdict is Verdict.PASS and "TypeError x5; reported only" in reported.reason


def test_an_unreadable_tracker_never_passes_a_gate_that_must_fail_on_new_types():
    assert with_error_tracking(SLO_PASS, None, "connection refused", FAIL).verdict is Verdict.INCONCLUSIVE
    report_only = with_error_tracking(SLO_PASS, None, "connection refused", REPORT)
    assert report_only.verdict is Verdict.PASS and report_only.reason.endswith("error tracking unreadable: connection refused")
    breach = Judgement(Verdict.FAIL, "green 5xx 9%")
    assert with_error_tracking(breach, None, "down", FAIL).verdict is Verdict.FAIL  # an unknown never excuses a breach
    assert with_error_tracking(SLO_PASS, None, None, FAIL) == SLO_PASS  # no tracker wired: unchanged


@pytest.mark.parametrize("section, message", [
    ({"min_events": 0}, "min_events must be an integer >= 1"),
    ({"ignore": ["ActiveRecord::RecordNotFound"]}, "not unqualified type names"),
])
def test_policy_refuses_bad_settings_by_name(section, message):
    with pytest.raises(ValueError, match=message):
        ErrorTrackingPolicy.from_plan(section)


def test_policy_defaults_report_only():
    assert ErrorTrackingPolicy.from_plan(None) == ErrorTrackingPolicy(False, 3, ())


def test_error_reporting_check_needs_every_color_under_its_own_release():
    from cutover_kit.error_tracking import judge_error_reporting

    expected = {"blue": "blue@abc", "green": "green@abc"}
    ok, line = judge_error_reporting(expected, {"blue": {"blue@abc": 1}, "green": {"green@abc": 2}}, "c1")
    assert ok and line == ("error reporting reaches the tracker (check c1): blue event received with release blue@abc; "
                           "green event received with release green@abc")
    ok, line = judge_error_reporting(expected, {"blue": {"blue@old": 1}, "green": {}}, "c1")
    assert not ok and "blue event received but with release blue@old, not blue@abc" in line and "green: no event received" in line
    ok, line = judge_error_reporting({"green": None}, {"green": {"None": 1}}, "c1")
    assert not ok and "green reports without a release" in line
