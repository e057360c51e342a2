"""The environment every Airflow component of this project runs with (rehearsal, tests, standalone).

`python -m sandbox.airflow_env [rehearsal|standalone|test]` prints it as shell exports.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# Not cutover_kit.paths.REPO_ROOT: this module is what puts plugins/ (and so cutover_kit) on the path.
REPO_ROOT = Path(__file__).resolve().parents[1]


def airflow_environment(purpose: str = "rehearsal") -> dict[str, str]:
    home = REPO_ROOT / ".airflow" / purpose
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # The project root must be importable by every component, triggerer included (GUIDE.md).
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]),
        **airflow_sentry_environment(),
    }


# Airflow's own exceptions go to the sandbox's Sentry receiver (sandbox/sentry_receiver.py) as
# project 3 (sandbox.launcher.sentry.SENTRY_PROJECTS; the apps are 1 and 2). Not imported from
# there: this module is what puts the project on the path.
AIRFLOW_SENTRY_PROJECT = 3


def airflow_sentry_environment(env: dict[str, str] | None = None, sentry_sdk_installed: bool | None = None) -> dict[str, str]:
    """[sentry] sentry_on / sentry_dsn (Airflow 3.2's names) for the sandbox receiver on
    SANDBOX_SENTRY_PORT, or nothing when sentry-sdk is not installed: with sentry_on, Airflow's task
    runner imports sentry_sdk, and every task would die on the ImportError. The project's lock
    carries sentry-sdk; the check keeps a venv built before it was added working."""
    env = os.environ if env is None else env
    if sentry_sdk_installed is None:
        sentry_sdk_installed = importlib.util.find_spec("sentry_sdk") is not None
    if not sentry_sdk_installed:
        return {}
    port = env.get("SANDBOX_SENTRY_PORT") or "18097"
    return {
        "AIRFLOW__SENTRY__SENTRY_ON": "True",
        "AIRFLOW__SENTRY__SENTRY_DSN": f"http://sandbox@127.0.0.1:{port}/{AIRFLOW_SENTRY_PROJECT}",
        # Any other [sentry] key is handed to sentry_sdk.init() as is.
        "AIRFLOW__SENTRY__ENVIRONMENT": "sandbox",
    }


def apply(purpose: str = "rehearsal") -> dict[str, str]:
    environment = airflow_environment(purpose)
    Path(environment["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(environment)
    for path in reversed(environment["PYTHONPATH"].split(os.pathsep)):
        if path not in sys.path:
            sys.path.insert(0, path)
    return environment


if __name__ == "__main__":
    for key, value in airflow_environment(sys.argv[1] if len(sys.argv) > 1 else "rehearsal").items():
        print(f"export {key}='{value}'")
