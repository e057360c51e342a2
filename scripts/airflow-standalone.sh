#!/usr/bin/env bash
# `make airflow`: the sandbox plus `airflow standalone` (SQLite, LocalExecutor) with this project's
# DAGs and Connections, so a person can trigger `cutover` from http://127.0.0.1:8080 (admin/admin).
# Ctrl-C (or SIGTERM) stops Airflow, the traffic generator and the sandbox, leaving nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# `airflow standalone` starts its components as `airflow ...` subprocesses: the venv must be on PATH.
export PATH="$PWD/.venv/bin:$PATH"
export PYTHONPATH="$PWD:$PWD/plugins"

eval "$($PY -m sandbox.airflow_env standalone)"
mkdir -p "$AIRFLOW_HOME"
# A fixed local password instead of a generated one (simple auth manager, development only).
echo '{"admin": "admin"}' > "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"

airflow_pid="" traffic_pid=""
stop_all() {
  trap - INT TERM EXIT
  if [ -n "$airflow_pid" ]; then
    # standalone stops its children only on SIGINT; give it time, then end its process group.
    kill -INT -- "-$airflow_pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$airflow_pid" 2>/dev/null || break; sleep 1; done
    kill -TERM -- "-$airflow_pid" 2>/dev/null || true
    sleep 2
    kill -KILL -- "-$airflow_pid" 2>/dev/null || true
  fi
  [ -n "$traffic_pid" ] && kill "$traffic_pid" 2>/dev/null && wait "$traffic_pid" 2>/dev/null || true
  $PY -m sandbox.launcher down || true
}
trap stop_all INT TERM EXIT

$PY -m sandbox.launcher up
eval "$($PY -m sandbox.launcher env)"
# Traffic so the gates have something to judge: the bounded generator runs while Airflow does.
$PY -m sandbox.traffic --rps 40 --max-seconds 3600 &
traffic_pid=$!
setsid airflow standalone &
airflow_pid=$!
echo "Airflow starting at http://127.0.0.1:8080 (admin / admin); Ctrl-C stops everything."
wait "$airflow_pid"
