"""No secret in the repository: detect-secrets scans every tracked file with the plugins and filters
recorded in the committed .secrets.baseline, and any finding the baseline does not hold fails.

The baseline's findings were audited as false positives (is_secret: false): Secret Names in the
Helm values, placeholders in READMEs, test fixtures, fingerprints. A new real finding is removed
from the file; a new false positive is added with `detect-secrets scan --baseline .secrets.baseline`
then audited (`detect-secrets audit .secrets.baseline`), or marked `# pragma: allowlist secret`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.kubernetes_schemas import REPO_ROOT

BASELINE = REPO_ROOT / ".secrets.baseline"
DETECT_SECRETS = Path(sys.executable).with_name("detect-secrets")


def findings(baseline: dict) -> set[tuple[str, str, str]]:
    # Line numbers move with every edit; a finding is its file, its kind and its secret's hash.
    return {(name, item["type"], item["hashed_secret"]) for name, items in baseline["results"].items() for item in items}


def scan_with_the_baseline_settings(tmp_path: Path) -> dict:
    """`scan --baseline` rewrites the baseline it is given: give it a copy, read what it found."""
    scratch = tmp_path / "baseline.json"
    shutil.copy(BASELINE, scratch)
    # The committed baseline holds hashes of its findings: it is not scanned itself.
    subprocess.run([str(DETECT_SECRETS), "scan", "--baseline", str(scratch), "--exclude-files", r"^\.secrets\.baseline$"],
                   cwd=REPO_ROOT, check=True,
                   capture_output=True, text=True, timeout=300)
    return json.loads(scratch.read_text())


def test_no_new_secret_in_the_tracked_files(tmp_path):
    committed = json.loads(BASELINE.read_text())
    assert all(item.get("is_secret") is False for items in committed["results"].values() for item in items), \
        "every baseline finding must be audited as a false positive"
    new = findings(scan_with_the_baseline_settings(tmp_path)) - findings(committed)
    assert new == set(), "detect-secrets found secrets the baseline does not hold:\n" + "\n".join(
        f"{name}: {kind}" for name, kind, _ in sorted(new))


def test_the_scan_finds_a_planted_secret(tmp_path):
    """The same scanner on a file with a credential in it: the check above can fail."""
    planted = tmp_path / "settings.py"
    planted.write_text('AWS_SECRET_ACCESS_KEY = "' + "wJalrXUtnFEMI/K7MDENG/" + 'bPxRfiCYEXAMPLEKEY"\n')
    out = subprocess.run([str(DETECT_SECRETS), "scan", "--all-files", str(planted)], cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=120)
    (items,) = json.loads(out.stdout)["results"].values()
    assert {item["type"] for item in items} & {"Secret Keyword", "Base64 High Entropy String"}
