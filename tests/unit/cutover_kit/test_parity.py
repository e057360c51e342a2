"""Parity: the JSON diff (one line per field with its path), the answer judge, the request file."""

from __future__ import annotations

import re
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
    assert all(item.reason for item in spec.ignore)
    kinds = {(rule.kind, rule.path) for rule in spec.normalise}
    assert {("timestamp", "$.created_at"), ("decimal_cents", "$.orders[*].amount"), ("absent_means", "$.currency"),
            ("key_case", "$")} <= kinds
    assert all(rule.reason for rule in spec.normalise)
    # Every request gets the file's normalisations; the line items request adds its own.
    assert all(request.normalise[:len(spec.normalise)] == spec.normalise for request in spec.requests)
    [items] = [request for request in spec.requests if request.path == "/api/orders/42/line_items"]
    own = items.normalise[len(spec.normalise):]
    assert ("decimal_cents", "$.line_items[*].unit_price") in {(rule.kind, rule.path) for rule in own}
    assert all(rule.reason for rule in own)
    assert all(request.normalise == spec.normalise for request in spec.requests if request is not items)
    assert re.fullmatch(r"parity file .*parity\.yaml: normalise\[1\] \(timestamp, line \d+\)", spec.normalise[1].where)


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


# ------------------------------------------------------------------------------------ normalisations


def rules(*entries):
    """Normalisations parsed the way the file loader parses them."""
    return parse_parity({"normalise": list(entries), "requests": GOOD["requests"]}, "p.yaml").normalise


STAMPS = rules({"kind": "timestamp", "path": "$.created_at", "precision": "ms", "reason": "r"},
               {"kind": "timestamp", "path": "$.orders[*].created_at", "precision": "ms", "reason": "r"})
CENTS = rules({"kind": "decimal_cents", "cents": "$.amount_cents", "decimal": "$.amount", "reason": "r"},
              {"kind": "absent_means", "path": "$.currency", "value": "USD", "reason": "r"})
SNAKE = rules({"kind": "key_case", "path": "$", "case": "snake", "reason": "r"})


def normalised(blue, green, normalise, ignore=()):
    return [difference.line() for difference in diff_json(blue, green, ignore, normalise=normalise)]


@pytest.mark.parametrize(("blue", "green"), [
    ("2024-01-07 03:10:04.800000", "2024-01-07T03:10:04.800Z"),  # Python demo app vs Rails / TypeScript
    ("2024-01-07T03:10:04.800Z", "2024-01-07T03:10:04.800Z"),
    ("2024-01-07 03:10:04", "2024-01-07T03:10:04.000Z"),
    ("2024-01-07 03:10:04.800999", "2024-01-07T03:10:04.800Z"),  # the same millisecond
    ("2024-01-07T04:10:04.800+01:00", "2024-01-07T03:10:04.800Z"),  # one instant, two offsets
])
def test_timestamps_compare_as_instants_at_the_declared_precision(blue, green):
    assert normalised({"created_at": blue}, {"created_at": green}, STAMPS) == []
    assert normalised({"orders": [{"created_at": blue}]}, {"orders": [{"created_at": green}]}, STAMPS) == []


def test_a_different_instant_is_reported_with_both_renderings():
    assert normalised({"created_at": "2024-01-07 03:10:04.800000"}, {"created_at": "2024-01-07T03:10:04.801Z"}, STAMPS) == [
        '$.created_at: blue "2024-01-07 03:10:04.800000" != green "2024-01-07T03:10:04.801Z"']
    # Only the declared paths are normalised: updated_at is compared as text.
    assert normalised({"updated_at": "2024-01-07 03:10:04"}, {"updated_at": "2024-01-07T03:10:04.000Z"}, STAMPS) == [
        '$.updated_at: blue "2024-01-07 03:10:04" != green "2024-01-07T03:10:04.000Z"']
    seconds = rules({"kind": "timestamp", "path": "$.t", "precision": "s", "reason": "r"})
    assert normalised({"t": "2024-01-07 03:10:04.100"}, {"t": "2024-01-07T03:10:04.999Z"}, seconds) == []


def test_a_timestamp_normaliser_that_does_not_fit_names_the_entry():
    assert normalised({"created_at": "yesterday"}, {"created_at": "2024-01-07T03:10:04.800Z"}, STAMPS) == [
        '$.created_at: timestamp normalisation (parity file p.yaml: normalise[0] (timestamp)) does not apply: '
        'blue "yesterday" is not a timestamp (ISO 8601, e.g. 2024-01-07T03:10:04.800Z or 2024-01-07 03:10:04.800000)']
    [line] = normalised({"created_at": "2024-01-07T03:10:04Z"}, {"created_at": 42}, STAMPS)
    assert "does not apply: green 42 is not a timestamp" in line
    [line] = normalised({"created_at": "2024-01-07"}, {"created_at": "2024-01-07T00:00:00Z"}, STAMPS)
    assert 'does not apply: blue "2024-01-07" is not a timestamp' in line  # a date alone is not an instant
    # null against a timestamp is a plain difference, not a misfit.
    assert normalised({"created_at": None}, {"created_at": "2024-01-07T03:10:04.800Z"}, STAMPS) == [
        '$.created_at: blue null (null) != green "2024-01-07T03:10:04.800Z" (string)']


def test_decimal_and_cents_are_one_amount():
    order = {"id": 1, "amount_cents": 1250}
    assert normalised(order, {**order, "amount": "12.50", "currency": "USD"}, CENTS) == []  # green adds both
    assert normalised(order, {"id": 1, "amount": "12.50"}, CENTS) == []  # green renamed the field
    assert normalised({"id": 1, "amount": 12.5}, order, CENTS) == []  # the other way round, as a number
    assert normalised(order, {**order, "amount": "12.5"}, CENTS) == []


def test_a_different_amount_is_reported_once_at_the_decimal_path():
    order = {"id": 1, "amount_cents": 1250}
    assert normalised(order, {"id": 1, "amount": "12.51"}, CENTS) == ['$.amount: blue 1250 cents ($.amount_cents) != green "12.51"']
    assert normalised(order, {"id": 1, "amount_cents": 1251, "amount": "12.51"}, CENTS) == [
        '$.amount: blue 1250 cents ($.amount_cents) != green "12.51"', "$.amount_cents: blue 1250 != green 1251"]
    # Green contradicting itself (cents agree, its decimal does not) is caught too.
    assert normalised(order, {"id": 1, "amount_cents": 1250, "amount": "12.60"}, CENTS) == [
        '$.amount: blue 1250 cents ($.amount_cents) != green "12.60"']
    # An amount on neither side of the pair is still a missing field.
    assert normalised(order, {"id": 1}, CENTS) == ["$.amount_cents: blue 1250 != green (absent)"]


def test_a_decimal_cents_normaliser_that_does_not_fit_names_the_entry():
    [line] = normalised({"amount_cents": "1250"}, {"amount_cents": "1250", "amount": "12.50"}, CENTS)
    assert line == ('$.amount_cents: decimal_cents normalisation (parity file p.yaml: normalise[0] (decimal_cents)) '
                    'does not apply: blue "1250" is not integer cents')
    [line] = normalised({"amount_cents": 1250}, {"amount": "12,50"}, CENTS)
    assert 'does not apply: green "12,50" is not a decimal amount' in line and line.startswith("$.amount: ")


def test_absent_means_reads_a_missing_member_as_the_declared_value():
    assert normalised({"id": 1}, {"id": 1, "currency": "USD"}, CENTS) == []
    assert normalised({"id": 1, "currency": "USD"}, {"id": 1}, CENTS) == []
    assert normalised({"id": 1}, {"id": 1, "currency": "EUR"}, CENTS) == ['$.currency: blue (absent, read as "USD") != green "EUR"']
    assert normalised({"id": 1, "currency": "USD"}, {"id": 1, "currency": "EUR"}, CENTS) == ['$.currency: blue "USD" != green "EUR"']


def test_key_case_compares_camel_and_snake_members_as_one():
    blue = {"user_id": 42, "orders": [{"amount_cents": 5, "created_at": "x"}]}
    green = {"userId": 42, "orders": [{"amountCents": 5, "createdAt": "x"}]}
    assert normalised(blue, green, SNAKE) == []
    assert normalised(blue, {**green, "userId": 43}, SNAKE) == ["$.user_id: blue 42 != green 43"]
    assert normalised(blue, green, ()) != []  # without the declaration they are different members
    # Paths of the other normalisers use the converted names.
    both = rules({"kind": "key_case", "path": "$", "case": "snake", "reason": "r"},
                 {"kind": "decimal_cents", "cents": "$.amount_cents", "decimal": "$.amount", "reason": "r"})
    assert normalised({"amount_cents": 1250}, {"amountCents": 1251, "amount": "12.51"}, both) == [
        '$.amount: blue 1250 cents ($.amount_cents) != green "12.51"', "$.amount_cents: blue 1250 != green 1251"]
    camel = rules({"kind": "key_case", "path": "$.meta", "case": "camel", "reason": "r"})
    assert normalised({"meta": {"trace_id": 1}, "a_b": 1}, {"meta": {"traceId": 1}, "a_b": 1}, camel) == []


def test_key_case_refuses_two_members_that_become_one():
    [line] = normalised({"user_id": 1}, {"userId": 1, "user_id": 1}, SNAKE)
    assert line == ('$: key_case normalisation (parity file p.yaml: normalise[0] (key_case)) does not apply: '
                    'green members "userId" and "user_id" are one in snake_case')


def test_real_differences_still_fail_under_every_normalisation():
    shipped = load_parity().normalise
    blue = {"id": 42, "user_id": 99, "amount_cents": 17805, "status": "shipped", "created_at": "2024-01-16 07:55:12",
            "updated_at": "2024-01-17 08:55:12"}
    green = {"id": 42, "user_id": 99, "amount_cents": 17805, "status": "shipped", "created_at": "2024-01-16T07:55:12.000Z",
             "updated_at": "2024-01-17T08:55:12.000Z", "amount": "178.05", "currency": "USD"}
    assert normalised(blue, green, shipped) == []
    assert normalised(blue, {**green, "status": "SHIPPED"}, shipped) == ['$.status: blue "shipped" != green "SHIPPED"']
    assert normalised(blue, {**green, "amount": "178.06"}, shipped) == ['$.amount: blue 17805 cents ($.amount_cents) != green "178.06"']
    del green["user_id"]
    assert normalised(blue, green, shipped) == ["$.user_id: blue 99 != green (absent)"]


def test_compare_applies_the_request_normalisations_and_keeps_the_line_format():
    spec = parse_parity({"normalise": [{"kind": "decimal_cents", "cents": "$.amount_cents", "decimal": "$.amount", "reason": "r"}],
                         "requests": GOOD["requests"]}, "p.yaml")
    result = compare(spec.requests[0], Answer(200, {"amount_cents": 1250}), Answer(200, {"amount": "12.51"}))
    assert result.lines == ('GET /api/orders/42: $.amount: blue 1250 cents ($.amount_cents) != green "12.51"',)
    assert compare(spec.requests[0], Answer(200, {"amount_cents": 1250}), Answer(200, {"amount": "12.50"})).ok


def bad_normalise(entry):
    return {"normalise": [entry], "requests": GOOD["requests"]}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("timestamp", "normalise[0] must be a mapping with kind"),
        ({"kind": "uppercase", "path": "$.status", "reason": "r"}, "normalise[0]: unknown normalisation kind 'uppercase'; known kinds: key_case, timestamp"),
        ({"path": "$.status", "reason": "r"}, "unknown normalisation kind None"),
        ({"kind": "timestamp", "path": "created_at", "precision": "ms", "reason": "r"},
         "normalise[0] (timestamp).path 'created_at' must be a JSON path starting with $"),
        ({"kind": "timestamp", "path": "$.a[", "precision": "ms", "reason": "r"}, "normalise[0] (timestamp).path '$.a[' is not a JSON path"),
        ({"kind": "timestamp", "path": "$.a", "precision": "minute", "reason": "r"}, "normalise[0] (timestamp).precision must be one of s, ms, us"),
        ({"kind": "timestamp", "path": "$.a", "reason": "r"}, "normalise[0] (timestamp) needs precision"),
        ({"kind": "timestamp", "path": "$.a", "precision": "ms"}, "normalise[0] (timestamp) needs a reason"),
        ({"kind": "timestamp", "path": "$.a", "precision": "ms", "reason": "r", "format": "iso"},
         "normalise[0] (timestamp) has unknown fields ['format']"),
        ({"kind": "key_case", "path": "$", "case": "kebab", "reason": "r"}, "normalise[0] (key_case).case must be one of snake, camel"),
        ({"kind": "decimal_cents", "cents": "$.amount_cents", "decimal": "$.total.amount", "reason": "r"},
         "must be two members of the same object"),
        ({"kind": "decimal_cents", "cents": "$.amount_cents", "decimal": "$.amount", "scale": 9, "reason": "r"},
         "normalise[0] (decimal_cents).scale must be an integer from 0 to 6"),
        ({"kind": "decimal_cents", "cents": "$.orders[*]", "decimal": "$.amount", "reason": "r"},
         "normalise[0] (decimal_cents).cents '$.orders[*]' must end on a member name"),
        ({"kind": "absent_means", "path": "$.currency", "value": ["USD"], "reason": "r"},
         "normalise[0] (absent_means).value must be a string, number, boolean or null"),
        ({"kind": "absent_means", "path": "$", "value": 1, "reason": "r"}, "(absent_means).path '$' must end on a member name"),
    ],
)
def test_bad_normalisations_are_refused_naming_the_entry(entry, message):
    with pytest.raises(ParityFileError) as error:
        parse_parity(bad_normalise(entry), "include/smoke/parity.yaml")
    assert str(error.value).startswith("parity file include/smoke/parity.yaml: ")
    assert message in str(error.value)


def test_a_normalisation_declared_twice_is_refused():
    twice = [{"kind": "absent_means", "path": "$.currency", "value": "USD", "reason": "r"}] * 2
    with pytest.raises(ParityFileError, match=r"normalise\[1\] \(absent_means\) declares absent_means at \$\.currency again "
                                              r"\(first at parity file f: normalise\[0\] \(absent_means\)\)"):
        parse_parity({"normalise": twice, "requests": GOOD["requests"]}, "f")
    with pytest.raises(ParityFileError, match=r"requests\[0\] \('order'\)\.normalise\[0\] \(absent_means\) declares"):
        parse_parity({"normalise": twice[:1], "requests": [{**GOOD["requests"][0], "normalise": twice[:1]}]}, "f")


def test_a_bad_normalisation_in_the_file_names_its_line(tmp_path: Path):
    path = tmp_path / "parity.yaml"
    path.write_text("normalise:\n  - kind: timestamp\n    path: $.created_at\n    precision: ms\n    reason: r\n"
                    "  - kind: uppercase\n    path: $.status\n    reason: r\n"
                    "requests:\n  - {name: a, method: GET, path: /x}\n")
    with pytest.raises(ParityFileError) as error:
        load_parity(path)
    assert str(error.value) == (f"parity file {path}: normalise[1] (line 6): unknown normalisation kind 'uppercase'; "
                                "known kinds: key_case, timestamp, decimal_cents, absent_means")
    path.write_text(path.read_text().replace("kind: uppercase", "kind: timestamp\n    precision: day"))
    with pytest.raises(ParityFileError, match=r"normalise\[1\] \(timestamp, line 6\)\.precision must be one of"):
        load_parity(path)


def test_per_request_normalisations_add_to_the_shared_ones():
    shared = {"kind": "absent_means", "path": "$.currency", "value": "USD", "reason": "r"}
    own = {"kind": "timestamp", "path": "$.at", "precision": "s", "reason": "r"}
    spec = parse_parity({"normalise": [shared], "requests": [{**GOOD["requests"][0], "normalise": [own]},
                                                             {"name": "n2", "method": "GET", "path": "/z"}]}, "f")
    assert [rule.kind for rule in spec.requests[0].normalise] == ["absent_means", "timestamp"]
    assert [rule.kind for rule in spec.requests[1].normalise] == ["absent_means"]
