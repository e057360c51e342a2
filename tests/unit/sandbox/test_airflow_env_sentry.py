"""Airflow's own Sentry integration in the sandbox's Airflow environment (sandbox/airflow_env.py)."""

from __future__ import annotations

from sandbox.airflow_env import airflow_sentry_environment


def test_airflow_reports_to_the_receivers_airflow_project_on_the_sandbox_port():
    env = airflow_sentry_environment({"SANDBOX_SENTRY_PORT": "24097"}, sentry_sdk_installed=True)
    assert env == {"AIRFLOW__SENTRY__SENTRY_ON": "True",
                   "AIRFLOW__SENTRY__SENTRY_DSN": "http://sandbox@127.0.0.1:24097/3",
                   "AIRFLOW__SENTRY__ENVIRONMENT": "sandbox"}
    assert airflow_sentry_environment({}, sentry_sdk_installed=True)["AIRFLOW__SENTRY__SENTRY_DSN"].endswith(":18097/3")


def test_without_sentry_sdk_it_stays_off_so_no_task_dies_on_the_import():
    assert airflow_sentry_environment({"SANDBOX_SENTRY_PORT": "24097"}, sentry_sdk_installed=False) == {}
