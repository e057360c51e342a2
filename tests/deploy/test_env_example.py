""".env.example lists every environment variable the project reads, with no real value: each name
the code reads (the sandbox's and the jobs' SANDBOX_*/CUTOVER_* literals in Python, JavaScript
and TypeScript, the Rails app's ENV reads, one AIRFLOW_CONN_* per Connection id) must be there,
and every secret-looking variable must be empty or a <placeholder>."""

from __future__ import annotations

import re
import subprocess

import pytest

from cutover_kit import connections
from tests.kubernetes_schemas import REPO_ROOT

ENV_EXAMPLE = REPO_ROOT / ".env.example"
LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|DSN|DATABASE_URL|_KEY")


def example() -> dict[str, str]:
    entries = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, f".env.example line {number} is neither a comment nor NAME=value: {line!r}"
        assert match.group(1) not in entries, f".env.example lists {match.group(1)} twice"
        entries[match.group(1)] = match.group(2)
    return entries


def tracked(*patterns: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--", *patterns], cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    return [name for name in out.stdout.split() if "node_modules" not in name and not name.startswith("tests/")]


def names_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for name in tracked("*.py", "*.js", "*.ts"):
        text = (REPO_ROOT / name).read_text()
        names |= set(re.findall(r"""["'`]((?:SANDBOX|CUTOVER|LOAD)_[A-Z0-9_]+)["'`]""", text))
        names |= set(re.findall(r"\benv\.((?:SANDBOX)_[A-Z0-9_]+)", text))  # the TypeScript app's config
    for name in tracked("sandbox/apps/rails/*.rb", "sandbox/apps/rails/config/*.yml"):
        names |= set(re.findall(r"""ENV(?:\.fetch\(|\[)["']([A-Z][A-Z0-9_]+)["']""", (REPO_ROOT / name).read_text()))
        names |= set(re.findall(r"""\benv\.fetch\(["']([A-Z][A-Z0-9_]+)["']""", (REPO_ROOT / name).read_text()))
    return names


def connection_ids() -> set[str]:
    return {value for key, value in vars(connections).items() if key.isupper() and isinstance(value, str)}


def test_every_variable_the_code_reads_is_listed():
    read = names_read_by_the_code() | {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in connection_ids()}
    assert len(read) > 40  # the scan found the code, not nothing
    missing = sorted(read - set(example()))
    assert missing == [], f".env.example lacks {', '.join(missing)}"


def test_the_scan_would_notice_a_new_variable(tmp_path):
    assert "SANDBOX_ROUTER_PORT" in names_read_by_the_code()
    assert "SECRET_KEY_BASE" in names_read_by_the_code()  # the Rails app's, read in config/


@pytest.mark.parametrize("name, value", sorted(example().items()))
def test_no_real_value(name, value):
    if SECRET_NAME.search(name):
        assert value == "" or re.fullmatch(r"'?.*<[^>]+>.*'?", value), f"{name} must be empty or a <placeholder>"
    if name.startswith("AIRFLOW_CONN_") and '"password"' in value:
        assert re.search(r'"password": "<[^>]+>"', value), f"{name} carries a password that is not a <placeholder>"
