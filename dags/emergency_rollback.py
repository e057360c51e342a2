"""Emergency rollback DAG: wiring only. Its tasks live in cutover_kit.stages.emergency_rollback."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, TriggerRule, chain, task

from cutover_kit.control import REASON_MAX_CHARS, REASON_MIN_CHARS
from cutover_kit.flags.model import FLAG_BACKENDS
from cutover_kit.notifiers.cutover import wire_emergency_notifications
from cutover_kit.plan import list_plans
from cutover_kit.stages import emergency_rollback

DOC = """
### Emergency rollback: everything back to blue (Rails), now

Trigger with a **reason** (required). Safe at any moment, including while `cutover` runs:

1. **Latch the emergency stop** in the shared cutover state: the running cutover stops advancing
   (every step and every gate poll checks it), ends as rolled back with your reason, and no cutover
   starts again until one is triggered with `acknowledge_emergency_stop`.
2. **Flags -> Rails** in the flag store the apps evaluate, verified in the store and in every app.
3. **Traffic -> 100 % blue** in the router, verified by read-back (runs even if step 2 failed).
4. **Smoke checks on blue**, directly and through the router; every answer must come from blue.
5. **Report**: one log line with each timing since the trigger.

Every task sets absolute state, so triggering it twice is harmless.
"""

# Emergency tasks jump the queue of the shared executor slots and retry fast.
DEFAULT_ARGS = {
    "owner": "platform",
    "retries": 3,
    "retry_delay": timedelta(seconds=1),
    "priority_weight": 100,
    "execution_timeout": timedelta(minutes=2),
}

with DAG(
    dag_id="emergency_rollback",
    description="Big red button: stop the cutover, all traffic back to blue (Rails), verified",
    doc_md=DOC,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Active from its first parse: the red button must work on a fresh install without anyone
    # finding and flipping a toggle first (Airflow pauses new DAGs by default).
    is_paused_upon_creation=False,
    default_args=DEFAULT_ARGS,
    params={
        # No default: the UI and the REST API refuse a trigger without a reason before a run exists.
        "reason": Param(type="string", minLength=REASON_MIN_CHARS, maxLength=REASON_MAX_CHARS, pattern=r"\S",
                        description="Why you roll back (shown in the cutover's verdict and in every log line)"),
        "flag_backend": Param(None, type=["null", "string"], enum=[None, *FLAG_BACKENDS],
                              description="Flag store to flip; empty = the one the apps report they evaluate"),
        # No run plan here: the router to drive comes from a plan file's `router` (haproxy | gateway_api).
        "router_plan": Param("default", type="string", enum=list_plans(),
                             description="Plan file in include/plans/ whose router (HAProxy or a Gateway API HTTPRoute) goes back to blue"),
    },
    tags=["cutover", "blue-green", "emergency"],
) as dag:
    latch = task(emergency_rollback.latch_emergency_stop, task_id="latch_emergency_stop")(reason="{{ params.reason }}")
    # ALL_DONE: flags and traffic go back even if the latch (or the flag flip) failed.
    flags_back = task(emergency_rollback.flags_to_rails, task_id="flags_to_rails", trigger_rule=TriggerRule.ALL_DONE)(
        flag_backend="{{ params.flag_backend or '' }}"
    )
    traffic_back = task(emergency_rollback.route_all_to_blue, task_id="route_all_to_blue", trigger_rule=TriggerRule.ALL_DONE)(
        router_plan="{{ params.router_plan }}"
    )
    blue_serving = task(emergency_rollback.verify_blue_serving, task_id="verify_blue_serving")()
    # No plan here: a failed smoke check flips flags in the param's store (else the apps' own).
    smoke = task(emergency_rollback.smoke_checks_on_blue, task_id="smoke_checks_on_blue", retries=1)(
        flag_backend="{{ params.flag_backend or '' }}"
    )
    report = task(emergency_rollback.report_emergency_rollback, task_id="report", trigger_rule=TriggerRule.ALL_DONE, retries=0)(
        latch.operator.task_id,
        {"flags": flags_back.operator.task_id, "traffic": traffic_back.operator.task_id, "blue serving": blue_serving.operator.task_id,
         "smoke on blue": smoke.operator.task_id},
    )
    chain(latch, flags_back, traffic_back, blue_serving, smoke, report)

# The stop latched and the report of every level each post one line to cutover_notifications.
wire_emergency_notifications(dag)
