"""Database preparation (stage 2): versioned expand/contract migrations, backfill and backups.

Pure-ish: psycopg2 and the PostgreSQL client binaries, no Airflow import, so the logic is tested
against a real PostgreSQL without a scheduler and the DAG's tasks stay thin wrappers.
"""
