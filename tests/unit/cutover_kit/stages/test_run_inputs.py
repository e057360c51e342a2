"""Stage 1 checks every input file the run needs later (the stage-11 smoke checks, the
acknowledged-writes ledger) before anything moves, naming the file and the problem."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import set_current_context

from cutover_kit.acknowledged_writes import AcknowledgedWritesError, load_acknowledged_writes, parse_acknowledged_writes
from cutover_kit.smoke import SmokeCheckError, load_checks
from cutover_kit.stages.deployment_readiness import validate_plan

DAG_STEPS = [5, 25, 50, 100]
DAG_APPROVAL_STEPS = [50, 100]


def run_validate_plan(**params):
    """validate_plan as the task runs it: the run's params come from the task context."""
    with set_current_context({"params": {"plan": "default", **params}}):
        return validate_plan(DAG_STEPS, DAG_APPROVAL_STEPS)


def test_stage_1_refuses_approvals_where_the_dag_has_no_approval_task():
    with set_current_context({"params": {"plan": "default"}}):
        with pytest.raises(AirflowFailException, match=r"approvals.before_steps \[50, 100\] ask before \[100\] %"):
            validate_plan(DAG_STEPS, [50])


def test_ledger_ids_are_distinct_sorted_and_blank_lines_are_skipped(tmp_path):
    ledger = tmp_path / "acknowledged.txt"
    ledger.write_text("12\n\n3\n  7  \n12\n")
    assert load_acknowledged_writes(ledger) == [3, 7, 12]
    ledger.write_text("")
    assert load_acknowledged_writes(ledger) == []  # nothing acknowledged yet is a valid ledger


@pytest.mark.parametrize("bad", ["12abc", "-4", "1 2", "1_000", "+5", "4.0", "\u0663"])
def test_a_line_that_is_not_an_order_id_is_named_with_its_number(bad):
    with pytest.raises(AcknowledgedWritesError) as refused:
        parse_acknowledged_writes(f"1\n\n2\n{bad}\n3\n", "ledger.txt")
    assert str(refused.value) == (f"acknowledged writes file ledger.txt: line 4 is not an order id "
                                  f"(one integer per line): {bad!r}")


def test_missing_directory_and_undecodable_ledgers_are_refused(tmp_path):
    with pytest.raises(AcknowledgedWritesError, match=f"acknowledged writes file {tmp_path / 'nope.txt'}: no such file"):
        load_acknowledged_writes(tmp_path / "nope.txt")
    with pytest.raises(AcknowledgedWritesError, match="not a regular file"):
        load_acknowledged_writes(tmp_path)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"1\n\xff\xfe\n")
    with pytest.raises(AcknowledgedWritesError, match="not UTF-8 text"):
        load_acknowledged_writes(binary)


def test_stage_1_refuses_a_malformed_or_missing_ledger_param(tmp_path):
    ledger = tmp_path / "acknowledged.txt"
    ledger.write_text("41\n42\norder-43\n")
    with pytest.raises(AirflowFailException, match=rf"Acknowledged writes refused: .*{ledger}: line 3 .*'order-43'"):
        run_validate_plan(acknowledged_writes_file=str(ledger))
    with pytest.raises(AirflowFailException, match=r"Acknowledged writes refused: .*missing\.txt: no such file"):
        run_validate_plan(acknowledged_writes_file=str(tmp_path / "missing.txt"))


def test_stage_1_passes_with_a_good_ledger_or_none(tmp_path):
    ledger = tmp_path / "acknowledged.txt"
    ledger.write_text("41\n42\n")
    assert run_validate_plan(acknowledged_writes_file=str(ledger))["name"] == "default"
    assert run_validate_plan(acknowledged_writes_file=None)["name"] == "default"
    assert run_validate_plan()["steps"] == DAG_STEPS


def test_stage_1_refuses_a_malformed_or_missing_smoke_checks_file(tmp_path, monkeypatch):
    broken = tmp_path / "checks.yaml"
    broken.write_text("checks:\n  - {name: liveness, method: GET, path: /healthz}\n")
    monkeypatch.setattr("cutover_kit.smoke.DEFAULT_CHECKS_FILE", broken)
    with pytest.raises(AirflowFailException, match=rf"Smoke checks refused .*{broken}: checks\[0\]\.expect_status is required"):
        run_validate_plan()
    monkeypatch.setattr("cutover_kit.smoke.DEFAULT_CHECKS_FILE", tmp_path / "gone.yaml")
    with pytest.raises(AirflowFailException, match=r"Smoke checks refused .*gone\.yaml.*No such file"):
        run_validate_plan()


@pytest.mark.parametrize("entry, problem", [
    ("{name: read back, method: GET, path: '/api/orders/{order_id}', expect_status: 200}",
     r"checks\[1\]\.path '/api/orders/\{order_id\}' uses \['order_id'\], which no earlier check remembers"),
    ("{name: bad template, method: GET, path: '/api/{oops', expect_status: 200}", r"checks\[1\]\.path .* is not a valid template"),
    ("{name: relative, method: GET, path: api/users, expect_status: 200}", r"checks\[1\]\.path must be text starting with '/'"),
    ("{name: keys, method: GET, path: /x, expect_status: 200, expect_keys: id}", r"checks\[1\]\.expect_keys must be a list"),
    ("{name: remember, method: GET, path: /x, expect_status: 200, remember: [id]}", r"checks\[1\]\.remember must be a mapping"),
    ("{name: status, method: GET, path: /x, expect_status: true}", r"checks\[1\]\.expect_status must be an integer"),
])
def test_checks_that_could_only_fail_at_a_traffic_step_are_refused_when_loaded(tmp_path, entry, problem):
    checks = tmp_path / "checks.yaml"
    checks.write_text(f"checks:\n  - {{name: liveness, method: GET, path: /healthz, expect_status: 200}}\n  - {entry}\n")
    with pytest.raises(SmokeCheckError, match=rf"smoke checks {checks}: {problem}"):
        load_checks(checks)


def test_a_path_may_use_what_an_earlier_check_remembers():
    shipped = load_checks()  # include/smoke/checks.yaml: "write order" remembers order_id, "read back order" uses it
    assert {"write order": {"order_id": "id"}}.items() <= {c.name: c.remember for c in shipped}.items()
    assert shipped[-1].path == "/api/orders/{order_id}"
