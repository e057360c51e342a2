"""The GitHub Actions workflow against GitHub's workflow schema, offline: check-jsonschema's
built-in vendor.github-workflows (the schema ships inside the package), then what the schema
cannot say: the README's test command on a fresh Debian 12, the images, the compose rehearsal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.kubernetes_schemas import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yaml"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")


def check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_the_workflow_matches_githubs_schema():
    result = check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_schema_check_bites(tmp_path):
    # Edited as text: PyYAML would turn the `on:` key into True on a round trip.
    text = WORKFLOW.read_text()
    assert text.count("    timeout-minutes: 45\n") == 1
    path = tmp_path / "ci.yaml"
    path.write_text(text.replace("    timeout-minutes: 45\n", "    timeout-minutes: 45\n    runs-on-cloud: true\n"))
    result = check(path)
    assert result.returncode == 1, result.stdout
    assert "$.jobs.images" in result.stdout + result.stderr


def test_the_jobs_run_the_projects_commands():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    assert set(jobs) == {"test", "images", "compose-rehearsal"}
    assert jobs["test"]["container"] == "debian:bookworm"
    runs = {name: " ".join(step.get("run", "") for step in job["steps"]) for name, job in jobs.items()}
    assert "make test" in runs["test"] and "make compose-rehearsal" in runs["compose-rehearsal"]
    assert "deploy/docker/" in runs["images"] and jobs["compose-rehearsal"]["needs"] == "images"
    assert workflow["permissions"] == {"contents": "read"}
    assert all(job["timeout-minutes"] <= 90 for job in jobs.values())
