"""Gate watchdog DAG (the dead-man's switch): wiring only. Its task lives in cutover_kit.stages.gate_watchdog."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from cutover_kit import connections
from cutover_kit.notifiers.webhook import WebhookNotifier
from cutover_kit.plan import list_plans
from cutover_kit.stages import gate_watchdog

DOC = """
### Gate watchdog: roll back when a cutover's SLO gate goes silent

Every SLO gate writes a heartbeat to the shared cutover state on every poll. Every minute this DAG
reads it with the router's weights and the cutover's progress. When green has traffic and the
running cutover's gate has been silent longer than its plan allows (3 polls + 10 s: 13 s at 1 s
polls), or a step set its weights and its gate never reported within 120 s, it latches the
emergency stop with its own reason (the cutover stops advancing; the next one needs
`acknowledge_emergency_stop`), runs the same rollback as a halted gate (flags -> Rails, then
traffic -> blue, each verified and within its own deadline), logs why in one line, e.g.

`Dead-man: gate of cutover/<run> silent for 47 s (limit 13 s) at 25 %; flags -> Rails, traffic -> blue`

and records the outcome `rolled_back` for the next cutover. It does nothing when green has no
traffic, when no cutover runs, or when the cutover ended (promoted at 100 % is normal). A state or
router it cannot read fails the task and touches nothing; a rollback that does not verify fails it
with the reason (and posts to the `smoke_webhook` Connection when defined).
"""

notify_failure = WebhookNotifier(conn_id=connections.SMOKE_WEBHOOK, title="Gate watchdog FAILED")

DEFAULT_ARGS = {
    "owner": "platform",
    "retries": 2,
    "retry_delay": timedelta(seconds=5),
    # A rollback jumps the queue of the shared executor slots, like the red button's tasks.
    "priority_weight": 100,
    # The rollback's own deadlines (flags 5 s ahead of traffic, traffic 60 s + its last attempt's 12 s)
    # and a few seconds of reading: under 80 s.
    "execution_timeout": timedelta(minutes=2),
    "on_failure_callback": [notify_failure],
}

with DAG(
    dag_id="gate_watchdog",
    description="Dead-man's switch: roll back when a cutover gate guarding green stops reporting",
    doc_md=DOC,
    schedule="* * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # Active from its first parse, like emergency_rollback: a switch that starts paused guards nothing.
    is_paused_upon_creation=False,
    dagrun_timeout=timedelta(minutes=8),
    default_args=DEFAULT_ARGS,
    tags=["cutover", "blue-green", "safety"],
    params={
        # Scheduled runs have no cutover plan of their own: as for emergency_rollback, the plan file
        # whose router (haproxy or gateway_api) the watchdog reads and drives.
        "router_plan": Param("default", type="string", enum=list_plans(),
                             description="Plan file whose router the watchdog reads and rolls back"),
    },
) as dag:
    task(gate_watchdog.watch_gates, task_id="watch_gates")(router_plan="{{ params.router_plan }}")
