"""The apps' structured log lines (cutover_kit.app_logs) on lines captured from the real apps:
tests/unit/cutover_kit/data/app_log_{blue,green}.log are the sandbox's blue.log and green.log
after router traffic at 50 %: green forwarding to blue, then serving itself, a 40 % error fault,
a 1.2 s latency fault (written by sandbox/apps/rails lograge and sandbox/apps/typescript pino)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover_kit.app_logs import (
    COMMON_FIELDS, ERROR, OTHER, REQUEST_FIELDS, SLOW, check_shape, fault_window, find_request, line_class, parse_lines,
    parse_recent, parse_time, select_excerpt, shape_verdict,
)

DATA = Path(__file__).resolve().parent / "data"


def captured(color: str):
    return parse_lines((DATA / f"app_log_{color}.log").read_text().splitlines())


def at(text: str) -> float:
    return parse_time(text)


@pytest.mark.parametrize("color", ["blue", "green"])
def test_every_line_the_real_apps_wrote_has_the_agreed_shape(color):
    lines = captured(color)
    check = check_shape(lines, color, since=0.0)
    assert check.problems == ()
    assert check.checked == len(lines) - 1  # all but the launcher's start marker
    assert check.requests > 20
    for line in lines:
        if line.is_request:
            assert set(COMMON_FIELDS + REQUEST_FIELDS) <= set(line.fields)


def test_both_colors_log_a_forwarded_request_under_one_request_id():
    blue, green = captured("blue"), captured("green")
    forwarded = [line for line in green if line.is_request and line.fields["served_by"] == "rails"]
    assert forwarded
    for line in forwarded:
        twin = find_request(blue, line.fields["request_id"])
        assert twin is not None, line.text
        assert twin.fields["path"] == line.fields["path"] and twin.fields["status"] == line.fields["status"]


def test_the_excerpt_puts_5xx_first_and_says_how_many_there_were():
    lines = captured("green")
    start, end = at("2026-12-08T02:29:14.000Z"), at("2026-12-08T02:29:14.540Z")  # the error fault's window
    excerpt = select_excerpt(lines, "green", start, end, limit=3)
    in_window = [line for line in lines if line.at is not None and start <= line.at <= end]
    fives = [line for line in in_window if line.fields.get("status", 0) >= 500]
    assert len(fives) == 4 and excerpt.total == len(in_window) and excerpt.errors == 4
    assert [line.number for line in excerpt.shown] == [line.number for line in fives[:3]]
    assert excerpt.summary == (f"green log 02:29:14-02:29:14 UTC: 4 of {len(in_window)} lines in the window were errors or 5xx; "
                               "the first 3, errors first:")
    rendered = excerpt.lines("green.log")
    assert rendered[1] == f"  green.log:{fives[0].number} {fives[0].text}"


def test_slow_requests_come_after_errors_and_before_the_rest():
    lines = captured("green")
    excerpt = select_excerpt(lines, "green", at("2026-12-08T02:29:14.000Z"), at("2026-12-08T02:29:20.000Z"), limit=8)
    classes = [line_class(line) for line in excerpt.shown]
    assert classes == sorted(classes, key=[ERROR, SLOW, OTHER].index)
    assert classes.count(ERROR) == 4 and classes.count(SLOW) == 2  # 2 of the 4 latency-fault requests reached green
    assert "2 slow (>= 1000 ms)" in excerpt.summary


def test_lines_outside_the_window_or_of_the_other_color_are_left_out():
    lines = captured("green")
    assert select_excerpt(lines, "green", at("2026-12-08T03:00:00Z"), at("2026-12-08T03:01:00Z")).summary == \
        "green log 03:00:00-03:01:00 UTC: no lines in the window"
    assert select_excerpt(lines, "blue", 0.0, at("2026-12-08T03:00:00Z")).total == 0


def test_text_that_is_not_json_is_dated_by_the_line_before_and_shown_first():
    lines = parse_lines([
        json.dumps({"time": "2026-12-08T02:00:00.000Z", "level": "info", "color": "green", "msg": "before"}),
        json.dumps({"time": "2026-12-08T02:00:10.000Z", "level": "info", "color": "green", "kind": "request", "status": 200}),
        "TypeError: Cannot read properties of undefined (reading 'id')",
        "    at serveOwn (/app/dist/src/app.js:180:9)",
    ], first_number=41)
    excerpt = select_excerpt(lines, "green", at("2026-12-08T02:00:05Z"), at("2026-12-08T02:00:15Z"))
    assert [line.number for line in excerpt.shown] == [43, 44, 42]
    assert excerpt.errors == 2


def test_bad_windows_and_limits_are_refused():
    with pytest.raises(ValueError, match="ends"):
        select_excerpt([], "green", 10.0, 5.0)
    with pytest.raises(ValueError, match="limit"):
        select_excerpt([], "green", 0.0, 5.0, limit=0)


def line(**fields):
    return json.dumps(fields)


GOOD = {"time": "2026-12-08T02:00:01.000Z", "level": "info", "color": "green", "release": "typescript@1"}
GOOD_REQUEST = {**GOOD, "kind": "request", "request_id": "r1", "method": "GET", "path": "/api/orders/1",
                "route": "/api/orders/{id}", "status": 200, "duration_ms": 1.5, "served_by": "typescript"}


def test_a_failure_names_the_color_the_line_number_and_what_is_missing():
    lines = parse_lines([
        line(**GOOD, msg="ok"),
        line(**{k: v for k, v in GOOD_REQUEST.items() if k not in ("request_id", "route")}),
        "Puma starting in single mode...",
        line(**{**GOOD_REQUEST, "status": "200"}),
        line(**{**GOOD_REQUEST, "color": "blue"}),
        line(**{**GOOD, "time": "yesterday", "msg": "x"}),
        line(**GOOD),
    ], first_number=100)
    check = check_shape(lines, "green", since=0.0)
    assert check.problems == (
        "green log line 101: request line without request_id, route",
        "green log line 102: not a JSON object: 'Puma starting in single mode...'",
        "green log line 103: status '200' is not an integer",
        "green log line 104: color is 'blue' in green's log",
        "green log line 105: time 'yesterday' is not an ISO 8601 time",
        "green log line 106: line without msg",
    )


def test_only_lines_after_the_last_older_line_are_checked_and_launcher_markers_are_not_the_apps():
    lines = parse_lines([
        "not json, but old",
        line(**{**GOOD, "time": "2026-12-08T01:00:00.000Z", "msg": "old"}),
        "=== 2026-12-08 02:00:00 starting: node main.js",
        line(**GOOD, msg="new"),
    ])
    check = check_shape(lines, "green", since=at("2026-12-08T01:30:00Z"))
    assert (check.checked, check.problems) == (1, ())


def test_the_verdict_needs_the_probe_line_and_shows_a_few_problems():
    ok_lines = parse_lines([line(**GOOD_REQUEST)])
    probe = find_request(ok_lines, "r1")
    passed, text = shape_verdict(check_shape(ok_lines, "green", 0.0), "r1", probe, 60)
    assert passed and text == ("green log: 1 lines in the last 60 s (1 request lines), all JSON with the agreed fields; "
                               "probe request r1 logged at line 1")
    passed, text = shape_verdict(check_shape(ok_lines, "green", 0.0), "r2", None, 60)
    assert not passed and text.endswith("but the probe request r2 was not logged")
    bad = parse_lines(["x"] * 7)
    passed, text = shape_verdict(check_shape(bad, "green", 0.0), "r1", None, 60)
    assert not passed and "7 do not have the agreed shape" in text and "(and 2 more)" in text


def test_the_fault_window_is_the_gates_judging_window_else_the_last_minute():
    assert fault_window(1000.0, {"measurements": {"window_seconds": 30}}) == (970.0, 1000.0, "the gate's judging window")
    assert fault_window(1000.0, None) == (940.0, 1000.0, "the last 60 s before the decision")
    assert fault_window(1000.0, {"measurements": {}}, default_seconds=10)[:2] == (990.0, 1000.0)


def test_parsing_from_the_end_stops_at_the_first_older_line_and_keeps_it():
    texts = (DATA / "app_log_green.log").read_text().splitlines()
    everything = parse_lines(texts)
    since = at("2026-12-08T02:29:14.540Z")
    recent = parse_recent(texts, since)
    older = [line for line in everything if line.at is not None and line.at < since]
    assert recent[0] == older[-1]
    assert recent[1:] == [line for line in everything if line.number > older[-1].number]
    # Same excerpt and same check as from the whole file.
    assert select_excerpt(recent, "green", since, since + 10) == select_excerpt(everything, "green", since, since + 10)
    assert check_shape(recent, "green", since) == check_shape(everything, "green", since)
    assert parse_recent(texts, 0.0) == everything
