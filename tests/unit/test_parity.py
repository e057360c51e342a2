"""Parity: the JSON diff (one line per field with its path), the answer judge, the request file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover_kit.parity import (
    ABSENT,
    Answer,
    Difference,
    ParityFileError,
    ParityRequest,
    compare,
    diff_json,
    load_parity,
    parse_parity,
    parse_pattern,
    summary_line,
)

ORDER = {"id": 42, "user_id": 899, "amount_cents": 17805, "status": "paid", "created_at": "2024-01-07 03:10:04"}


def lines(blue, green, ignore=()):
    return [difference.line() for difference in diff_json(blue, green, ignore)]


# ------------------------------------------------------------------------------------ diff_json


def test_equal_bodies_have_no_difference():
    assert diff_json(ORDER, dict(ORDER)) == []
    assert diff_json([1, {"a": [True, None]}], [1, {"a": [True, None]}]) == []
    assert diff_json("text", "text") == []


def test_a_changed_value_is_one_line_with_its_path_and_both_values():
    assert lines(ORDER, {**ORDER, "status": "PAID"}) == ['$.status: blue "paid" != green "PAID"']


def test_nested_objects_and_lists_name_the_full_path():
    blue = {"user_id": 42, "orders": [{"id": 1, "status": "paid"}, {"id": 2, "status": "pending", "meta": {"tags": ["a", "b"]}}]}
    green = {"user_id": 42, "orders": [{"id": 1, "status": "paid"}, {"id": 2, "status": "pending", "meta": {"tags": ["a", "c"]}}]}
    assert lines(blue, green) == ['$.orders[1].meta.tags[1]: blue "b" != green "c"']


def test_every_difference_is_listed_in_a_stable_order():
    blue = {"b": 1, "a": 1, "c": {"z": 1, "y": 1}}
    green = {"b": 2, "a": 2, "c": {"z": 2, "y": 2}}
    assert [d.path for d in diff_json(blue, green)] == ["$.a", "$.b", "$.c.y", "$.c.z"]


def test_a_field_on_one_side_only_is_absent_on_the_other():
    assert lines({"id": 1}, {"id": 1, "amount": "1.00"}) == ['$.amount: blue (absent) != green "1.00"']
    assert lines({"id": 1, "email": "a@b"}, {"id": 1}) == ['$.email: blue "a@b" != green (absent)']
    assert diff_json({}, {"x": None})[0].blue is ABSENT


def test_type_differences_name_both_json_types():
    assert lines({"id": 42}, {"id": "42"}) == ['$.id: blue 42 (number) != green "42" (string)']
    assert lines({"ok": True}, {"ok": 1}) == ["$.ok: blue true (boolean) != green 1 (number)"]
    assert lines({"x": None}, {"x": 0}) == ["$.x: blue null (null) != green 0 (number)"]
    assert lines({"orders": []}, {"orders": {}}) == ["$.orders: blue [] (array) != green {} (object)"]


def test_numbers_compare_by_value_but_never_equal_a_boolean():
    assert diff_json({"n": 1}, {"n": 1.0}) == []
    assert diff_json({"n": 0}, {"n": False}) == [Difference("$.n", 0, False, "type")]


def test_list_length_difference_then_the_common_prefix():
    assert lines({"orders": [1, 2, 3]}, {"orders": [1, 5]}) == [
        "$.orders: blue 3 items != green 2 items",
        "$.orders[1]: blue 2 != green 5",
    ]


def test_ignored_paths_skip_values_types_absence_and_subtrees():
    blue = {"id": 1, "updated_at": "t1", "meta": {"trace": {"a": 1}}, "orders": [{"id": 5, "status": "paid"}]}
    green = {"id": 1, "updated_at": 7, "meta": {"trace": {"a": 2, "b": 3}}, "amount": "1.00",
             "orders": [{"id": 5, "status": "paid", "amount": "2.00", "currency": "USD"}]}
    ignore = ["$.updated_at", "$.meta.trace", "$.amount", "$.orders[*].amount", "$.orders[*].currency"]
    assert diff_json(blue, green, ignore) == []
    # Without the list wildcard the per-order fields are reported again.
    assert lines(blue, green, ["$.updated_at", "$.meta.trace", "$.amount"]) == [
        '$.orders[0].amount: blue (absent) != green "2.00"',
        '$.orders[0].currency: blue (absent) != green "USD"',
    ]


def test_ignore_patterns_are_exact_not_prefixes_of_names():
    # $.status must not hide $.status_v2, and a member wildcard does not match array elements.
    assert lines({"status_v2": "a"}, {"status_v2": "b"}, ["$.status"]) == ['$.status_v2: blue "a" != green "b"']
    assert diff_json({"a": {"x": 1}}, {"a": {"x": 2}}, ["$.*.x"]) == []
    assert lines([{"x": 1}], [{"x": 2}], ["$.*.x"]) == ["$[0].x: blue 1 != green 2"]
    assert diff_json([{"x": 1}], [{"x": 2}], ["$[*].x"]) == []
    assert diff_json([{"x": 1}, {"x": 2}], [{"x": 1}, {"x": 3}], ["$[1]"]) == []


def test_odd_member_names_are_quoted_in_paths_and_patterns():
    assert lines({"a b": 1}, {"a b": 2}) == ['$["a b"]: blue 1 != green 2']
    assert diff_json({"a b": 1}, {"a b": 2}, ['$["a b"]']) == []


def test_long_values_are_cut_in_the_line():
    line = lines({"x": "a" * 200}, {"x": "b"})[0]
    assert len(line) < 120 and line.endswith('green "b"') and "…" in line


@pytest.mark.parametrize("bad", ["status", "$status", "$.orders[x]", "$..a", "$.a[", "", None])
def test_malformed_patterns_are_refused(bad):
    with pytest.raises(ValueError):
        parse_pattern(bad)


# ------------------------------------------------------------------------------------ compare


def request(**fields):
    return ParityRequest(**{"name": "order", "method": "GET", "path": "/api/orders/42", **fields})


def test_same_answers_pass():
    result = compare(request(expect_status=200), Answer(200, ORDER), Answer(200, dict(ORDER), served_by="green"))
    assert result.ok and result.lines == ()


def test_body_difference_lines_carry_the_request():
    result = compare(request(), Answer(200, ORDER), Answer(200, {**ORDER, "status": "PAID"}))
    assert not result.ok
    assert result.lines == ('GET /api/orders/42: $.status: blue "paid" != green "PAID"',)


def test_status_mismatch_is_one_line_without_a_field_by_field_body_diff():
    result = compare(request(), Answer(200, ORDER), Answer(500, {"error": "internal error"}))
    assert len(result.lines) == 1
    assert result.lines[0].startswith("GET /api/orders/42: HTTP status: blue 200 != green 500 (blue body {")
    assert 'green body {"error": "internal error"}' in result.lines[0]


def test_expected_status_catches_both_sides_failing_alike():
    result = compare(request(expect_status=200), Answer(404, {"error": "x"}), Answer(404, {"error": "x"}))
    assert result.lines == ("GET /api/orders/42: blue HTTP 404, expected 200", "GET /api/orders/42: green HTTP 404, expected 200")


def test_no_answer_is_reported_as_unreachable():
    result = compare(request(), Answer(200, ORDER), Answer(None, error="connection refused"))
    assert result.unreachable and not result.ok
    assert result.lines == ("GET /api/orders/42: green gave no answer: connection refused",)


def test_green_forwarding_to_rails_is_not_parity():
    result = compare(request(), Answer(200, ORDER, served_by="rails"), Answer(200, ORDER, served_by="rails"))
    assert not result.ok and "green answered through rails" in result.lines[0]


def test_many_differences_are_capped_with_a_count():
    blue = {f"f{i:02d}": i for i in range(30)}
    green = {f"f{i:02d}": -i - 1 for i in range(30)}
    result = compare(request(), Answer(200, blue), Answer(200, green))
    assert len(result.lines) == 21 and result.lines[-1] == "GET /api/orders/42: ... and 10 more differences"
    assert result.more == 10 and len(result.differences) == 30


def test_summary_line():
    ok = compare(request(), Answer(200, ORDER), Answer(200, ORDER))
    bad = compare(request(name="other"), Answer(200, ORDER), Answer(200, {**ORDER, "id": 1}))
    assert summary_line([ok, ok], "app_blue", "app_green").startswith("Parity ok: 2 requests answered alike")
    assert summary_line([ok, bad], "app_blue", "app_green") == "Parity FAILED: 1 of 2 requests differ between app_blue and app_green"


# ------------------------------------------------------------------------------------ the request file


def test_the_shipped_parity_file_is_valid_and_read_only():
    spec = load_parity()
    assert len(spec.requests) >= 5
    assert {r.method for r in spec.requests} == {"GET"}
    assert all(r.expect_status for r in spec.requests)
    assert "$.orders[*].amount" in spec.ignore_for(spec.requests[0])
    assert all(item.reason for item in spec.ignore)


GOOD = {"requests": [{"name": "order", "method": "GET", "path": "/api/orders/42"}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be a mapping with 'requests'"),
        ({"request": []}, "unknown top-level fields ['request']"),
        ({"requests": []}, "'requests' must be a non-empty list"),
        ({"requests": ["GET /x"]}, "requests[0] must be a mapping"),
        ({"requests": [{"name": "a", "method": "GET"}]}, "requests[0] ('a').path is required"),
        ({"requests": [{"name": "a", "method": "POST", "path": "/api/orders"}]},
         "requests[0] ('a').method 'POST': parity requests must be read-only"),
        ({"requests": [{"name": "a", "method": "GET", "path": "api/x"}]}, "requests[0] ('a').path 'api/x' must start with /"),
        ({"requests": [{"name": "a", "method": "GET", "path": "/x", "expect_status": "200"}]},
         "requests[0] ('a').expect_status must be an HTTP status code"),
        ({"requests": [{"name": "a", "method": "GET", "path": "/x", "headers": {}}]}, "requests[0] ('a') has unknown fields ['headers']"),
        ({"requests": [GOOD["requests"][0], {"name": "order", "method": "GET", "path": "/y"}]},
         "requests[1] repeats the name 'order' of requests[0]"),
        ({**GOOD, "ignore": ["$.amount"]}, "ignore[0] must be a mapping with path and reason"),
        ({**GOOD, "ignore": [{"path": "$.amount"}]}, "ignore[0] ('$.amount') needs a reason"),
        ({**GOOD, "ignore": [{"path": "amount", "reason": "r"}]}, "ignore[0].path 'amount' must be a JSON path starting with $"),
        ({"requests": [{**GOOD["requests"][0], "ignore": [{"path": "$.x[", "reason": "r"}]}]},
         "requests[0] ('order').ignore[0].path '$.x[' is not a JSON path"),
    ],
)
def test_malformed_documents_name_the_entry(document, message):
    with pytest.raises(ParityFileError) as error:
        parse_parity(document, "include/smoke/parity.yaml")
    assert str(error.value).startswith("parity file include/smoke/parity.yaml: ")
    assert message in str(error.value)


def test_unreadable_or_invalid_yaml_names_the_file(tmp_path: Path):
    with pytest.raises(ParityFileError, match="parity file .*missing.yaml"):
        load_parity(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("requests: [\n  - name: a\n")
    with pytest.raises(ParityFileError, match=f"parity file {broken}"):
        load_parity(broken)


def test_per_request_ignores_add_to_the_shared_ones():
    spec = parse_parity({"ignore": [{"path": "$.a", "reason": "r"}],
                         "requests": [{**GOOD["requests"][0], "ignore": [{"path": "$.b", "reason": "r"}]},
                                      {"name": "n2", "method": "get", "path": "/z"}]}, "f")
    assert spec.ignore_for(spec.requests[0]) == ("$.a", "$.b")
    assert spec.ignore_for(spec.requests[1]) == ("$.a",)
    assert spec.requests[1].method == "GET"
