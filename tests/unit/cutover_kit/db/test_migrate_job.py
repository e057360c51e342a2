"""The migration job's command line: what it refuses before touching any database. The migrations
themselves run against PostgreSQL in tests/integration/test_migrations.py."""

from __future__ import annotations

from cutover_kit.db import migrate_job


def test_an_unknown_step_is_usage():
    code, line = migrate_job.run("contract", {"CUTOVER_DATABASE_DSN": "dbname=x"})
    assert code == 2 and line == "usage: python -m cutover_kit.db.migrate_job {expand|backfill} (got 'contract')"


def test_no_dsn_is_refused_naming_the_variable():
    code, line = migrate_job.run("expand", {"CUTOVER_DATABASE_DSN": "  "})
    assert code == 2 and line.startswith("CUTOVER_DATABASE_DSN is not set")


def test_main_prints_the_refusal_on_stderr_and_exits_non_zero(capsys, monkeypatch):
    monkeypatch.delenv("CUTOVER_DATABASE_DSN", raising=False)
    assert migrate_job.main(["expand"]) == 2
    assert "CUTOVER_DATABASE_DSN is not set" in capsys.readouterr().err
    assert migrate_job.main(["expand", "now"]) == 2
