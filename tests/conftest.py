"""Shared test set-up: the Airflow environment of the project (SQLite under .airflow/test) is
applied before anything imports airflow, so DAG parsing never needs a real connection."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "plugins")]

from sandbox import airflow_env  # noqa: E402

airflow_env.apply("test")
