#!/usr/bin/env bash
# `make airflow`: the sandbox plus `airflow standalone` (SQLite, LocalExecutor) with this project's
# DAGs and Connections, so a person can trigger `cutover` from http://127.0.0.1:8080 (admin/admin).
# Ctrl-C stops Airflow (it stops its children only on SIGINT) and then the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PYTHONPATH="$PWD:$PWD/plugins"

eval "$($PY -m sandbox.airflow_env standalone)"
$PY -m sandbox.launcher up
eval "$($PY -m sandbox.launcher env)"
# A fixed local password instead of a generated one (documented in GUIDE.md).
mkdir -p "$AIRFLOW_HOME"
echo '{"admin": "admin"}' > "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"

cleanup() { $PY -m sandbox.launcher down || true; }
trap cleanup EXIT
# Traffic so the gates have something to judge: the bounded generator runs while Airflow does.
$PY -m sandbox.traffic --rps 40 --max-seconds 3600 &
traffic_pid=$!
trap 'kill $traffic_pid 2>/dev/null || true; cleanup' EXIT
.venv/bin/airflow standalone
