"""Scheduled smoke DAG: wiring only. Checks and parity logic live in plugins/cutover_kit."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from cutover_kit.notifiers.webhook import WebhookNotifier
from cutover_kit import connections
from cutover_kit.stages import smoke as smoke_tasks

DOC = """
### Smoke: both colors, every 15 minutes

Tells operators, before users do, that one side has drifted. Each run:

1. **validate_request_files**: `include/smoke/checks.yaml` and `include/smoke/parity.yaml` parse
   and validate; a malformed file fails here, naming the file and the entry, before any request.
2. **checks_blue / checks_green / checks_router**: the stage-11 smoke checks (liveness,
   readiness, read a user, write an order and read it back) on each color directly (Connections
   `app_blue`, `app_green`; green with `X-Cutover-Serve: typescript`, as stage 11 sends it, so its
   own code answers) and through the router (`app_router`). Retried: a failure may be a blip.
3. **parity_blue_green**: each read-only request of the parity set goes to blue and to green
   (green with `X-Cutover-Serve: typescript`, so its own code answers); statuses and JSON bodies
   must match except for the declared volatile paths. One log line per differing field, e.g.
   `GET /api/orders/42: $.status: blue "shipped" != green "SHIPPED"`. Not retried.

A failed task is red in the grid and posts a Slack-compatible notice to the webhook of Connection
`smoke_webhook` (a run that fails without a failed task, e.g. on its timeout, posts one too).
Without that Connection the task log says so in one line; the failure stands either way.
"""

notify_failure = WebhookNotifier(conn_id=connections.SMOKE_WEBHOOK, title="Smoke FAILED")

DEFAULT_ARGS = {
    "owner": "platform",
    "retries": 2,
    "retry_delay": timedelta(seconds=5),
    # Each request has a 3 s timeout; a task that needs a minute is itself a finding.
    "execution_timeout": timedelta(seconds=60),
    "on_failure_callback": [notify_failure],
}

validate_files = task(smoke_tasks.validate_request_files, task_id="validate_request_files",
                      execution_timeout=timedelta(seconds=30))
smoke_checks = task(smoke_tasks.run_smoke_checks)
parity = task(smoke_tasks.check_parity, task_id="parity_blue_green")

with DAG(
    dag_id="smoke",
    description="Smoke checks of blue, green and the router, and blue/green response parity",
    doc_md=DOC,
    schedule="*/15 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # Active from its first parse: a watchdog that starts paused watches nothing.
    is_paused_upon_creation=False,
    # Well under the 15-minute schedule, and above the worst case of the tasks' own timeouts and retries.
    dagrun_timeout=timedelta(minutes=10),
    default_args=DEFAULT_ARGS,
    on_failure_callback=[notify_failure],
    params={
        "checks_file": Param("include/smoke/checks.yaml", type="string", minLength=1,
                             description="Smoke check list, relative to the project root or absolute"),
        "parity_file": Param("include/smoke/parity.yaml", type="string", minLength=1,
                             description="Parity request set, relative to the project root or absolute"),
    },
    tags=["smoke", "blue-green", "scheduled"],
) as dag:
    files = validate_files("{{ params.checks_file }}", "{{ params.parity_file }}")
    targets = [
        smoke_checks.override(task_id=f"checks_{name}")(conn_id, "{{ params.checks_file }}")
        for name, conn_id in (("blue", connections.APP_BLUE), ("green", connections.APP_GREEN), ("router", connections.APP_ROUTER))
    ]
    same_answers = parity("{{ params.parity_file }}")
    files >> [*targets, same_answers]
