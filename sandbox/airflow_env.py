"""The environment every Airflow component of this project runs with (rehearsal, tests, standalone).

`python -m sandbox.airflow_env [rehearsal|standalone|test]` prints it as shell exports.
"""

from __future__ import annotations

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
