"""Smoke DAG pieces without services: request-file validation before any request, and the
body_drift fault's control body (what the failing smoke test switches on in green; each app's
own suite tests what the fault does to its answers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from cutover_kit.stages import smoke as smoke_run
from sandbox.faults import fault_body


def test_shipped_request_files_validate():
    summary = smoke_run.validate_request_files("include/smoke/checks.yaml", "include/smoke/parity.yaml")
    assert summary["checks"] == 5 and summary["parity_requests"] >= 5
    # The shipped set declares equivalences (normalise: amount, currency, timestamps) and ignores nothing.
    assert summary["ignored_paths"] == []
    assert summary["reason"].startswith("Smoke request files valid: 5 checks in include/smoke/checks.yaml; ")


def test_malformed_parity_file_fails_naming_file_and_entry_without_retry(tmp_path: Path, monkeypatch):
    # No AIRFLOW_CONN_APP_* exists here: a request attempt would fail differently (connection not found).
    for name in ("AIRFLOW_CONN_APP_BLUE", "AIRFLOW_CONN_APP_GREEN", "AIRFLOW_CONN_APP_ROUTER"):
        monkeypatch.delenv(name, raising=False)
    bad = tmp_path / "parity.yaml"
    bad.write_text("requests:\n  - {name: user, method: GET, path: /api/users/42}\n"
                   "  - {name: create, method: POST, path: /api/orders, body: {user_id: 1}}\n")
    with pytest.raises(AirflowFailException) as error:
        smoke_run.validate_request_files("include/smoke/checks.yaml", str(bad))
    assert str(error.value) == (f"Smoke refused before any request: parity file {bad}: requests[1] ('create').method "
                                "'POST': parity requests must be read-only (GET); each one is sent to both colors")


def test_malformed_checks_file_fails_too(tmp_path: Path):
    bad = tmp_path / "checks.yaml"
    bad.write_text("checks:\n  - {name: liveness, method: GET, path: /healthz}\n")
    with pytest.raises(AirflowFailException, match=r"smoke checks .*checks.yaml: checks\[0\].expect_status is required"):
        smoke_run.validate_request_files(str(bad), "include/smoke/parity.yaml")


def test_request_files_resolve_from_the_project_root():
    assert smoke_run.resolve_file("include/smoke/parity.yaml").is_file()
    assert smoke_run.resolve_file("/etc/hostname") == Path("/etc/hostname")


def test_body_drift_fault_control_body():
    assert fault_body("body_drift", None, None) == {"body_drift": True}


def test_write_fault_bodies_name_the_apps_fraction_fields():
    assert fault_body("corrupt_writes", None, None, fraction=0.5) == {"corrupt_writes_fraction": 0.5}
    assert fault_body("drop_writes", None, None, fraction=1) == {"drop_writes_fraction": 1}
    with pytest.raises(ValueError, match="a drop_writes fault needs fraction in \\(0, 1\\]; got None"):
        fault_body("drop_writes", None, None)
