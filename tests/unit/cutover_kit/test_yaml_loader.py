"""cutover_kit.yaml_loader: the strict YAML reader of plans, scenarios, smoke checks and parity sets,
and each of those consumers refusing a duplicate key with the file and the line named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cutover_kit.parity import ParityFileError, load_parity
from cutover_kit.plan import DEFAULT_PLANS_DIR, PlanError, load_plan
from cutover_kit.scenario import ScenarioError, load_scenario
from cutover_kit.smoke import SmokeCheckError, load_checks
from cutover_kit.yaml_loader import YAMLFileError, load_yaml, parse_yaml


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------- the loader


def test_a_duplicate_top_level_key_names_the_file_both_lines_and_the_key(tmp_path):
    path = write(tmp_path, "x.yaml", "steps: [5, 100]\nbake_seconds: 60\nwindow_seconds: 10\nbake_seconds: 1\n")
    with pytest.raises(YAMLFileError) as caught:
        load_yaml(path)
    assert str(caught.value) == f"{path} line 4: duplicate key 'bake_seconds' (first at line 2)"
    assert (caught.value.source, caught.value.line) == (str(path), 4)


def test_a_duplicate_key_in_a_nested_mapping_is_refused_too(tmp_path):
    text = "slo:\n  max_error_ratio: 0.01\n  quantiles: [0.95]\n  max_error_ratio: 0.5\n"
    with pytest.raises(YAMLFileError, match=r"^f\.yaml line 4: duplicate key 'max_error_ratio' \(first at line 2\)$"):
        parse_yaml(text, "f.yaml")


def test_a_duplicate_key_inside_a_list_item_is_refused(tmp_path):
    text = "checks:\n  - name: a\n    path: /x\n  - name: b\n    path: /y\n    name: c\n"
    with pytest.raises(YAMLFileError, match=r"^f\.yaml line 6: duplicate key 'name' \(first at line 4\)$"):
        parse_yaml(text, "f.yaml")


def test_equal_keys_in_different_mappings_are_fine():
    assert parse_yaml("a: {k: 1}\nb: {k: 2}\n", "f.yaml") == {"a": {"k": 1}, "b": {"k": 2}}


def test_a_key_merged_in_with_an_anchor_may_be_overridden_once():
    text = "base: &base {k: 1, j: 2}\nchild:\n  <<: *base\n  k: 3\n"
    assert parse_yaml(text, "f.yaml")["child"] == {"k": 3, "j": 2}
    with pytest.raises(YAMLFileError, match=r"line 5: duplicate key 'k' \(first at line 4\)"):
        parse_yaml(text + "  k: 4\n", "f.yaml")


def test_a_syntax_error_names_the_file_and_the_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "name: ok\nsteps: [5, 25\nbake_seconds: 1\n")
    with pytest.raises(YAMLFileError) as caught:
        load_yaml(path)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path} line 3: is not valid YAML: while parsing a flow sequence")


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(YAMLFileError, match=rf"^{re.escape(str(tmp_path))}/gone\.yaml: cannot read it: No such file"):
        load_yaml(tmp_path / "gone.yaml")


def test_an_empty_document_is_none_and_plain_values_load_as_safe_load_does():
    assert parse_yaml("", "f.yaml") is None
    assert parse_yaml("a: [1, 2.5, true, null, '3']\n", "f.yaml") == {"a": [1, 2.5, True, None, "3"]}


def test_python_tags_are_refused_as_by_safe_load():
    with pytest.raises(YAMLFileError, match="line 1: is not valid YAML"):
        parse_yaml("a: !!python/object/apply:os.system ['true']\n", "f.yaml")


# ------------------------------------------------------------------------------- consumers


def test_a_plan_file_with_a_duplicate_key_is_refused_naming_file_and_line(tmp_path):
    text = (DEFAULT_PLANS_DIR / "default.yaml").read_text()
    first = text.splitlines().index("bake_seconds: 300") + 1
    path = write(tmp_path, "twice.yaml", text + "bake_seconds: 5\n")
    with pytest.raises(PlanError) as caught:
        load_plan(str(path))
    assert str(caught.value) == (f"plan 'twice': {path} line {len(text.splitlines()) + 1}: "
                                 f"duplicate key 'bake_seconds' (first at line {first})")


def test_a_scenario_file_with_a_duplicate_key_is_refused_naming_file_and_line(tmp_path):
    path = write(tmp_path, "custom.yaml", "name: custom\ndescription: d\nplan: default\nname: custom\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path))
    assert str(caught.value) == f"scenario custom: {path} line 4: duplicate key 'name' (first at line 1)"


def test_a_smoke_checks_file_with_a_duplicate_key_is_refused_naming_file_and_line(tmp_path):
    path = write(tmp_path, "checks.yaml", "checks:\n  - name: liveness\n    method: GET\n    path: /healthz\n"
                                          "    expect_status: 200\n    expect_status: 500\n")
    with pytest.raises(SmokeCheckError) as caught:
        load_checks(path)
    assert str(caught.value) == f"smoke checks {path} line 6: duplicate key 'expect_status' (first at line 5)"


def test_a_parity_file_with_a_duplicate_key_is_refused_naming_file_and_line(tmp_path):
    path = write(tmp_path, "parity.yaml", "requests:\n  - name: order\n    method: GET\n    path: /api/orders/21\n"
                                          "    path: /api/orders/22\n")
    with pytest.raises(ParityFileError) as caught:
        load_parity(path)
    assert str(caught.value) == f"parity file {path} line 5: duplicate key 'path' (first at line 4)"


def test_with_lines_every_mapping_knows_its_first_line_and_is_still_a_dict():
    from cutover_kit.yaml_loader import line_of

    document = parse_yaml("a: 1\nlist:\n  - x: 1\n    y: 2\n  - {z: 3}\n", "f.yaml", lines=True)
    assert document == {"a": 1, "list": [{"x": 1, "y": 2}, {"z": 3}]}
    assert [line_of(document), *(line_of(item) for item in document["list"])] == [1, 3, 5]
    assert line_of(parse_yaml("a: 1\n", "f.yaml")) is None  # off by default: plain dicts
    with pytest.raises(YAMLFileError, match=r"^f\.yaml line 3: duplicate key 'x' \(first at line 2\)$"):
        parse_yaml("a:\n  x: 1\n  x: 2\n", "f.yaml", lines=True)
