"""Stage 11's first look at a step's rows (stages/traffic_migration.py): the probe reads the window
that starts before the weights changed, with the run's ledger, always closes its connection, and
an unreadable database is reported, never raised (the gate's polls look again)."""

from __future__ import annotations

import pytest

import cutover_kit.db.integrity_probe
from cutover_kit.integrity import IntegritySnapshot
from cutover_kit.stages import traffic_migration


class FakeProbe:
    made: list["FakeProbe"] = []
    snapshot: IntegritySnapshot | Exception = IntegritySnapshot(watermarks={"orders": 10}, rows_checked={"orders": 3})

    def __init__(self, dsn, since_epoch, ledger_path):
        self.dsn, self.since_epoch, self.ledger_path, self.closed = dsn, since_epoch, ledger_path, False
        FakeProbe.made.append(self)

    def read(self):
        if isinstance(FakeProbe.snapshot, Exception):
            raise FakeProbe.snapshot
        return FakeProbe.snapshot

    def close(self):
        self.closed = True


@pytest.fixture
def probes(monkeypatch):
    FakeProbe.made = []
    monkeypatch.setattr(cutover_kit.db.integrity_probe, "IntegrityProbe", FakeProbe)
    return FakeProbe


def test_the_first_look_reads_from_before_the_weights_changed_with_the_ledger(probes):
    probes.snapshot = IntegritySnapshot(watermarks={"orders": 10}, rows_checked={"orders": 3}, acknowledged=2)
    judgement, error = traffic_migration._first_look_at_data(
        {"changing_at": 999.5, "set_at": 1000.0, "percent": 25}, "/tmp/ledger.txt", "postgres_default")
    assert error is None and judgement.intact and "2 acknowledged writes since the step began, all present" in judgement.reason
    (probe,) = probes.made
    assert (probe.since_epoch, probe.ledger_path, probe.closed) == (999.5, "/tmp/ledger.txt", True)


def test_a_violation_is_judged_and_an_unreadable_database_is_reported_not_raised(probes):
    probes.snapshot = IntegritySnapshot(watermarks={"orders": 10}, rows_checked={"orders": 3}, acknowledged=2, missing=(12,))
    judgement, _ = traffic_migration._first_look_at_data({"set_at": 1000.0}, "", "postgres_default")
    assert not judgement.intact and judgement.reason.startswith("data: orders id 12 acknowledged to a client")
    probes.snapshot = RuntimeError("connection refused")
    judgement, error = traffic_migration._first_look_at_data({"set_at": 1000.0}, "", "postgres_default")
    assert judgement is None and error == "integrity probe could not read the database: connection refused"
    assert all(probe.closed for probe in probes.made)
