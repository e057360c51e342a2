"""Each app's own unit tests, in its own ecosystem, as `make test` runs them: blue's Minitest
(`bin/test`, plain Ruby, offline) and green's node test runner (`npm test` on the dist/ that
bootstrap compiled, with the project's Node). Both are fast (seconds) and need no service."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from sandbox.node import build_stamp, node_env, npm_argv

REPO_ROOT = Path(__file__).resolve().parents[2]
RAILS_DIR = REPO_ROOT / "sandbox" / "apps" / "rails"
TYPESCRIPT_DIR = REPO_ROOT / "sandbox" / "apps" / "typescript"

pytestmark = pytest.mark.timeout(180)


def test_blue_minitest_suite_passes():
    done = subprocess.run([str(RAILS_DIR / "bin" / "test")], cwd=RAILS_DIR, capture_output=True, text=True, timeout=120)
    summary = re.search(r"(\d+) runs, (\d+) assertions, (\d+) failures, (\d+) errors, (\d+) skips", done.stdout)
    assert done.returncode == 0 and summary, done.stdout[-3000:] + done.stderr[-2000:]
    runs, assertions, failures, errors, skips = map(int, summary.groups())
    assert runs >= 10 and assertions >= runs and (failures, errors, skips) == (0, 0, 0), summary.group(0)


def test_green_node_test_runner_suite_passes():
    assert build_stamp(TYPESCRIPT_DIR).exists(), "dist/ is not built from the current sources: run `make bootstrap`"
    done = subprocess.run(npm_argv("test", "--silent"), cwd=TYPESCRIPT_DIR, env=node_env(), capture_output=True, text=True,
                          timeout=150)
    counts = dict(re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", done.stdout, re.MULTILINE))
    assert done.returncode == 0 and counts, done.stdout[-3000:] + done.stderr[-2000:]
    assert int(counts["tests"]) >= 20 and counts["pass"] == counts["tests"], counts
    assert (counts["fail"], counts["cancelled"], counts["skipped"], counts["todo"]) == ("0", "0", "0", "0"), counts
