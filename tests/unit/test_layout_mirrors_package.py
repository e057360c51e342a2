"""tests/unit mirrors the code: tests/unit/cutover_kit/<pkg>/ tests plugins/cutover_kit/<pkg>/,
tests/unit/sandbox/<pkg>/ tests sandbox/<pkg>/ and tests/unit/benchmarks/ tests benchmarks/ (the
emulations a benchmark's figures rest on), so a module's tests are one hop from the module."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parent
REPO_ROOT = UNIT.parents[1]
CODE_ROOTS = {"cutover_kit": REPO_ROOT / "plugins" / "cutover_kit", "sandbox": REPO_ROOT / "sandbox",
              "benchmarks": REPO_ROOT / "benchmarks"}


def test_every_unit_test_sits_beside_a_real_package():
    stray = []
    for test_file in sorted(UNIT.rglob("test_*.py")):
        relative = test_file.parent.relative_to(UNIT)
        if relative == Path("."):
            if test_file.name != Path(__file__).name:
                stray.append(f"{test_file.name}: put it under tests/unit/cutover_kit/..., tests/unit/sandbox/... or tests/unit/benchmarks/")
            continue
        root, *rest = relative.parts
        package = CODE_ROOTS.get(root)
        if package is None or not package.joinpath(*rest).is_dir():
            stray.append(f"{test_file.relative_to(UNIT)}: no package {root}/{'/'.join(rest)} to mirror")
    assert stray == [], "\n".join(stray)


def test_every_test_file_name_is_unique():
    # The test folders have no __init__.py, so pytest imports each file as a top-level module named
    # after it: two files of one name in different folders stop the whole collection (seen in CI).
    from collections import Counter
    from pathlib import Path

    names = Counter(path.name for path in (Path(__file__).resolve().parents[1]).rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
