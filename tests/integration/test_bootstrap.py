"""scripts/bootstrap.sh on this machine, once `make bootstrap` has run (the targets that run these
tests depend on it): it uses Debian's /usr/bin/python3 and the project's Node, never a python3,
node or npm that comes first on PATH (pyenv's Python and a preinstalled Node sit there on these
machines and hid the fresh-Debian defects), and a second run is a quick no-op.
scripts/test-fresh-debian.sh proves the first run on a plain Debian 12."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.node import build_stamp

REPO_ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = REPO_ROOT / "scripts" / "bootstrap.sh"


@pytest.fixture
def path_with_foreign_tools(tmp_path) -> tuple[dict[str, str], Path]:
    """An environment whose PATH starts with a python3, node and npm that record their call in
    CALLED and exit 97."""
    directory = tmp_path / "foreign-bin"
    directory.mkdir()
    for name in ("python3", "python", "node", "npm", "npx"):
        fake = directory / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >> "{directory}/CALLED"\n'
                        f'echo "bootstrap called the foreign {name}" >&2\nexit 97\n')
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{directory}{os.pathsep}{os.environ['PATH']}")
    return env, directory


def bootstrap(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(BOOTSTRAP), *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_venv_is_built_by_debians_python3():
    stamp = REPO_ROOT / ".venv" / ".bootstrap-stamp"
    assert stamp.exists(), "run `make bootstrap` first (it writes .venv/.bootstrap-stamp)"
    debian_python = Path("/usr/bin/python3").resolve()
    assert stamp.read_text().startswith(f"python={debian_python} version=")
    assert Path(sys.executable).resolve() == debian_python


@pytest.mark.parametrize("args", [(), ("--venv-only",)], ids=["full", "venv-only"])
def test_a_done_bootstrap_is_a_quick_no_op_that_calls_no_foreign_tool(path_with_foreign_tools, args):
    env, foreign = path_with_foreign_tools
    started = time.monotonic()
    done = bootstrap(env, *args)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (foreign / "CALLED").exists(), (foreign / "CALLED").read_text()
    assert done.stdout == "" and elapsed < 10, f"{elapsed:.1f} s: {done.stdout}"


def test_a_bootstrap_that_compiles_green_runs_only_the_projects_node(path_with_foreign_tools):
    # Without its build stamp (as after a changed source, lock or tsconfig), bootstrap compiles
    # green again: `npm run build`, whose tsc is a `#!/usr/bin/env node` script, so the `node`
    # found on npm's PATH runs it. The foreign node first on this PATH must never be that one.
    # Only the stamp goes (npm ci stays done): tsc rewrites dist/ with the same files, so an app
    # already running from dist/ is not disturbed.
    env, foreign = path_with_foreign_tools
    typescript = REPO_ROOT / "sandbox" / "apps" / "typescript"
    stamp = build_stamp(typescript)
    assert stamp.exists(), "run `make bootstrap` first"
    stamp.unlink()
    done = bootstrap(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "npm run build in sandbox/apps/typescript with the project's Node" in done.stdout, done.stdout
    assert not (foreign / "CALLED").exists(), (foreign / "CALLED").read_text()
    assert stamp.exists() and (typescript / "dist" / "src" / "main.js").is_file()


def test_an_unknown_argument_is_refused_before_anything_runs(path_with_foreign_tools):
    env, _ = path_with_foreign_tools
    done = bootstrap(env, "--full")
    assert done.returncode == 2 and "usage:" in done.stderr
