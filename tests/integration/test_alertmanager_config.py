"""include/alertmanager/alertmanager.yml.tmpl, rendered as the launcher will render it: amtool
accepts it, and each kind of alert reaches the receiver it should (amtool config routes test)."""

from __future__ import annotations

import string
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "include" / "alertmanager" / "alertmanager.yml.tmpl"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alertmanager") / "alertmanager.yml"
    path.write_text(string.Template(TEMPLATE.read_text()).substitute(webhook_url="http://127.0.0.1:18099"))
    return path


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=30)


def test_template_has_exactly_the_webhook_placeholder() -> None:
    placeholders = {m.group("braced") or m.group("named")
                    for m in string.Template.pattern.finditer(TEMPLATE.read_text()) if m.group("braced") or m.group("named")}
    assert placeholders == {"webhook_url"}


def test_amtool_check_config_accepts_it(rendered: Path) -> None:
    done = amtool("check-config", str(rendered))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 inhibit rules" in done.stdout and "3 receivers" in done.stdout


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=ErrorBudgetBurnFast", "color=green", "severity=page"], "green-page"),
    (["alertname=ColorDown", "color=green", "severity=page"], "green-page"),
    (["alertname=ErrorBudgetBurnFast", "color=blue", "severity=page"], "page"),
    (["alertname=ErrorBudgetBurnSlow", "color=green", "severity=ticket"], "ticket"),
    (["alertname=Unlabelled"], "ticket"),
])
def test_route(rendered: Path, labels: list[str], receiver: str) -> None:
    # --verify.receivers makes amtool exit 1 when the route ends elsewhere.
    done = amtool("config", "routes", "test", f"--config.file={rendered}", f"--verify.receivers={receiver}", *labels)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == receiver


def test_route_test_can_fail(rendered: Path) -> None:
    done = amtool("config", "routes", "test", f"--config.file={rendered}", "--verify.receivers=ticket",
                  "color=green", "severity=page")
    assert done.returncode != 0
