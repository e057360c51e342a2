"""Cutover DAG: wiring only. Every decision lives in plugins/cutover_kit (see its module docs)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, TaskGroup, chain, task
from airflow.sdk import TriggerRule

from cutover_kit.connections import ERROR_TRACKING
from cutover_kit.control import REASON_MAX_CHARS, REASON_MIN_CHARS
from cutover_kit.notifiers.cutover import wire_cutover_notifications
from cutover_kit.notifiers.deadlines import cutover_deadlines
from cutover_kit.notifiers.webhook import ApprovalRequestNotifier
from cutover_kit.operators.approval import StepApprovalOperator
from cutover_kit.plan import OVERRIDABLE_FIELDS, list_plans, load_plan
from cutover_kit.sensors.slo_gate import SLOGateOperator
from cutover_kit.stages import (
    blue_green_setup, blue_monitoring, database_preparation, database_rollback, deployment_readiness, feature_flags,
    full_cutover, health_checks, load_testing, monitoring, post_launch, rollback, rollback_procedures, security_audit,
    traffic_migration, verdict,
)

DOC = """
### Blue (Rails) -> green (TypeScript) cutover

Trigger with a plan name (a file in `include/plans/`) and optional overrides. The stages, in run
order, each one task group whose code is one module of `plugins/cutover_kit/stages/`:

| Stage | Task group | Module | What it does |
|---|---|---|---|
| 1 | `stage_01_deployment_readiness` | `deployment_readiness.py` | The plan and the run's files validate, every Connection resolves, every endpoint answers, no earlier cutover is in place (green has no traffic and the last run did not promote, unless `allow_rerun_reason` says why to start over), every metric template parses and answers one series at most per color, the plan's flag store (flagd file or Unleash) reads cleanly or has no flags yet (stage 3 creates them), every app reports its flags, no emergency stop is latched. |
| 2 | `stage_02_database_preparation` | `database_preparation.py` | Schema version check, pg_dump backup restored and compared, expand migration (TypeScript shape beside the Rails one, sync triggers), batched backfill, then Great Expectations against the backup. |
| - | `decide_after_validation` | `verdict.py` | Branch: a failed validation goes to `database_rollback` and no traffic moves. |
| - | `database_rollback` | `database_rollback.py` | Why stage 2 stopped, then the down migration (only this run's expand, only while green gets no traffic), verified. |
| 3 | `stage_03_feature_flags` | `feature_flags.py` | Every flag at the Rails-safe default, read back from the store and confirmed by every app. |
| 4 | `stage_04_monitoring` | `monitoring.py` | The run proves its observability before traffic moves: every rule group of `include/prometheus/rules/` loaded in Prometheus and healthy; a uniquely labelled critical test alert for green posted to Alertmanager reaches the receiver named by Connection `alertmanager_default` (read back from the webhook receiver where one is configured), then resolved; every panel query of `include/dashboards/cutover.json` answers with data (a panel marked `requires` is reported, not failed); both colors' log lines parse as JSON with the agreed fields and a probe request's X-Request-Id shows up in each. A failure stops the run before any traffic moves, like stage 5. |
| 5 | `stage_05_health_checks` | `health_checks.py` | Liveness and readiness of both colors, PostgreSQL and Redis round trips. |
| 6 | `stage_06_load_testing` | `load_testing.py` | A copy of the database from stage 2's verified backup (expanded like the live one), one extra blue and green started on it (Connections `app_blue_loadtest`, `app_green_loadtest`); a step load on each finds its knee; green must reach blue's knee (within a tolerance) and the plan's peak x headroom, with p95 at the peak close to blue's. The extra instances are stopped and the copy dropped whatever happened. |
| - | `decide_after_load_test` | `verdict.py` | Branch: a halt verdict or a failed stage-6 task goes to `rollback.halt_at_load_testing`; green never gets a user request. |
| 7 | `stage_07_security_audit` | `security_audit.py` | Both colors' stage instances audited and compared: passive OWASP ZAP baseline rules on every GET route of each app's OpenAPI document, routes one color answers and the other not, every protected route refuses a missing or wrong token, no stack trace or banner on errors; schemathesis, wapiti and sqlmap per color, bandit over the Python, npm audit over the TypeScript lock (the plan's `security.scanners`, each time-bounded; a listed scanner that cannot run fails the stage). The judge halts on a finding at the plan's blocking severity on green or on any check where green is worse than blue. Stage 6's `stop_stage_instances` runs after it. |
| - | `decide_after_security_audit` | `verdict.py` | Branch: a halt verdict or an incomplete audit goes to `rollback.halt_at_security_audit`; green never gets a user request. |
| 8 | `stage_08_rollback_procedures` | `rollback_procedures.py` | Rollback drill: a little traffic on green, rolled back and verified; the time is recorded. On a re-run on purpose, green's current share is what is rolled back. |
| 9 | `stage_09_blue_green_setup` | `blue_green_setup.py` | Both servers healthy in the router, green at 0 %. |
| 12 | `stage_12_blue_monitoring` | `blue_monitoring.py` | Blue's baseline before traffic moves (every gate also checks that blue does not regress); after the standby watch, blue verified warm. |
| 10 | `stage_10_traffic_migration` | `traffic_migration.py` | Before 50 % (the plan's `approvals`): a go/no-go approval (`step_50.approve`, answered in *Required actions* or over REST by the plan's `assigned_users`; no answer by the timeout = reject) while the 25 % gate keeps judging (a breach rolls back at once), then `decide_approval`. Per step: flags (features on, rollout = step %) -> weights (read back) -> **stage 11** smoke checks (with stage 7's passive checks on green and blue: a blocking finding on green, or green worse than blue, rolls back) -> SLO gate (green vs live blue, deferrable) -> branch: next step or rollback. |
| 13 | `stage_13_full_cutover` | `full_cutover.py` | The go/no-go approval of 100 % (`step_100.approve`, 50 % watched while it waits), 100 %, then a standby watch with the same gate, then promote; blue stays warm. |
| - | `rollback` | `rollback.py` | Why the run halted, flags -> Rails, then traffic -> 100 % blue, each verified; then blue proven serving alone. |
| - | `verify_data_integrity`, `cutover_verdict` | `verdict.py` | Zero data loss checked at the end of every path; the run's last word. |
| 15 | `stage_15_post_launch` | `post_launch.py` | After the verdict, on every path: the post-launch report (HTML + PNG charts: traffic share, error ratio and latency per color, SLO compliance per step, gate decisions, rollback timings, data validation, lessons learned) under `$CUTOVER_REPORT_DIR` or `$AIRFLOW_HOME/reports/cutover/<run_id>/`; its path is in the task's log and XCom. A teardown: it never changes the run's outcome. |

Stage 12's baseline runs after stage 9 and before the first traffic step; its `verify_blue_kept_warm`
runs after stage 13's standby watch. Stage 11 runs inside every step of stages 10 and 13.
Stage 14 arrives in a later release. Every SLO gate also consults Alertmanager (Connection
`alertmanager_default`): a critical alert firing for green halts the step at once.

A run stopped before it changed the schema (refused plan, missing Connection, latched emergency
stop, failed backup) leaves the database alone. Data integrity is checked at the end of every path.

The `emergency_rollback` DAG can stop this run at any moment: every step and every gate poll
checks its latched stop, and the run ends rolled back with the operator's reason. A latched stop
blocks new runs until one is triggered with `acknowledge_emergency_stop`.
"""

REPORT_DOC = """
The post-launch report of this run: `report.html` and five PNG charts under
`$CUTOVER_REPORT_DIR/cutover/<run_id>/` (default `$AIRFLOW_HOME/reports/cutover/<run_id>/`).
The exact path is the last line of this task's log and `html` in its XCom (return_value).
See docs/post-launch-report.md; what to do after a halt: docs/runbooks/.
"""

# The DAG's shape (one task group per traffic step) is fixed at parse time by the default plan;
# stage 1 refuses a chosen plan whose steps differ, before anything moves.
DAG_STEPS = load_plan("default").steps
# Likewise the steps with a go/no-go approval task: the default plan's; stage 1 refuses a plan that
# asks elsewhere. A plan that asks fewer (or none) has those tasks record "not asked" and go on.
_DEFAULT_APPROVALS = load_plan("default").approvals
DAG_APPROVAL_STEPS = _DEFAULT_APPROVALS.before_steps if _DEFAULT_APPROVALS else ()

GX_SCRATCH_DB = database_preparation.DEFAULT_SCRATCH_DB

DEFAULT_ARGS = {
    "owner": "platform",
    "retries": 2,
    "retry_delay": timedelta(seconds=2),
}


def _params() -> dict[str, Param]:
    params = {
        "plan": Param("default", type="string", enum=list_plans(), description="Plan file in include/plans/"),
    }
    params["acknowledge_emergency_stop"] = Param(
        False, type="boolean",
        description="An emergency rollback latched a stop: set true to clear it and start this cutover anyway",
    )
    params["allow_rerun_reason"] = Param(
        None, type=["null", "string"], minLength=REASON_MIN_CHARS, maxLength=REASON_MAX_CHARS,
        description="a reason (logged) to run even though the last cutover promoted or green already has traffic",
    )
    params["acknowledged_writes_file"] = Param(
        None, type=["null", "string"], description="File of order ids the clients saw acknowledged (one per line); checked by every SLO gate and at the end"
    )
    for field, schema in OVERRIDABLE_FIELDS.items():
        if field == "steps":  # the step list is the DAG's shape, not a run-time knob
            continue
        params[field] = Param(None, **schema)  # each fragment carries its own description
    return params


# NONE_SKIPPED: decide after a gate that passed, failed or never ran because a task before it
# failed (-> halt); but not for steps the run never reached (their gate was skipped).
decide_step = {
    module: task.branch(module.decide_after_gate, trigger_rule=TriggerRule.NONE_SKIPPED, retries=0)
    for module in (traffic_migration, full_cutover)
}
# After an approval that was answered, rejected, timed out, or failed because the step on green
# halted while it waited (-> halt); not for a step the run never reached.
decide_approval = {
    module: task.branch(module.decide_after_approval, trigger_rule=TriggerRule.NONE_SKIPPED, retries=0)
    for module in (traffic_migration, full_cutover)
}
request_approval = ApprovalRequestNotifier()
# ALL_DONE: the verdict runs whatever happened, and fails the run unless it was promoted.
decide_validation = task.branch(
    verdict.decide_after_validation, task_id="decide_after_validation", trigger_rule=TriggerRule.NONE_SKIPPED, retries=0
)
verdict_task = task(verdict.cutover_verdict, task_id="cutover_verdict", trigger_rule=TriggerRule.ALL_DONE, retries=0)


with DAG(
    dag_id="cutover",
    description="Blue (Rails) -> green (TypeScript) cutover, SLO-gated, with automatic rollback",
    doc_md=DOC,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # Left to Airflow's default (paused at creation where the deployment says so): a cutover moves
    # production traffic, so a person unpauses it on purpose. emergency_rollback and smoke are not.
    default_args=DEFAULT_ARGS,
    params=_params(),
    tags=["cutover", "blue-green"],
    # A run that overstays the longest plan's worst case (or whose standby watch does) notifies.
    deadline=cutover_deadlines(),
) as dag:
    with TaskGroup("stage_01_deployment_readiness") as stage_01:
        plan = task(deployment_readiness.validate_plan, task_id="validate_plan", retries=0)(
            dag_steps=list(DAG_STEPS), dag_approval_steps=list(DAG_APPROVAL_STEPS)
        )
        # Every task that touches the router builds the one the plan chose (router: haproxy | gateway_api).
        connections = task(deployment_readiness.resolve_connections, task_id="resolve_connections", retries=0)(
            plan_task_id=plan.operator.task_id
        )
        endpoints = task(deployment_readiness.check_endpoints_reachable, task_id="check_endpoints_reachable")(
            plan_task_id=plan.operator.task_id
        )
        previous = task(deployment_readiness.check_previous_cutover, task_id="check_previous_cutover")(
            plan_task_id=plan.operator.task_id
        )
        metric_templates = task(deployment_readiness.check_metric_templates, task_id="check_metric_templates")(
            plan_task_id=plan.operator.task_id
        )
        flag_store_ready = task(deployment_readiness.check_flag_store, task_id="check_flag_store")(plan_task_id=plan.operator.task_id)
        no_stop = task(deployment_readiness.check_emergency_stop, task_id="check_emergency_stop")()
        chain(plan, connections, endpoints, previous, metric_templates, flag_store_ready, no_stop)

    with TaskGroup("stage_02_database_preparation") as stage_02:
        version = task(database_preparation.check_schema_version, task_id="check_schema_version", retries=0)()
        backup = task(database_preparation.backup_before_migration, task_id="backup_and_verify")()
        expand = task(database_preparation.expand_schema, task_id="expand_schema")()
        fill = task(database_preparation.backfill_new_columns, task_id="backfill_new_columns")()
        scratch = task(database_preparation.restore_backup_for_validation, task_id="restore_backup_for_validation")(
            backup, scratch_db=GX_SCRATCH_DB
        )
        validate = task(database_preparation.validate_expanded_database, task_id="validate_with_great_expectations", retries=1)(
            backup, GX_SCRATCH_DB
        )
        drop_scratch = task(database_preparation.drop_backup_scratch, task_id="drop_validation_scratch", trigger_rule=TriggerRule.ALL_DONE)(
            scratch_db=GX_SCRATCH_DB, restore_task_id=scratch.operator.task_id
        )
        chain(version, backup, expand, fill, scratch, validate, drop_scratch)

    with TaskGroup("stage_03_feature_flags") as stage_03:
        rails_default = task(feature_flags.ensure_rails_default, task_id="flags_at_rails_default")(
            plan_task_id=plan.operator.task_id
        )

    # Independent checks, side by side; issue 11's error-reporting and JSON-log checks join this group.
    with TaskGroup("stage_04_monitoring") as stage_04:
        monitoring_checks = [
            task(monitoring.check_rules_loaded, task_id="check_rules_loaded")(),
            task(monitoring.check_alert_routing, task_id="check_alert_routing")(),
            task(monitoring.check_dashboard_queries, task_id="check_dashboard_queries")(),
            task(monitoring.check_json_logs, task_id="check_json_logs")(),
            task(monitoring.check_error_reporting, task_id="check_error_reporting")(),
        ]

    with TaskGroup("stage_05_health_checks") as stage_05:
        health_tasks = [
            task(health_checks.check_color_health, task_id="blue_health")("blue"),
            task(health_checks.check_color_health, task_id="green_health")("green"),
            task(health_checks.check_postgres, task_id="postgres")(),
            task(health_checks.check_redis, task_id="redis")(),
        ]
        stage_05_tasks = [check.operator for check in health_tasks]

    with TaskGroup("stage_06_load_testing") as stage_06:
        stage_instances = task(load_testing.start_stage_instances, task_id="start_stage_instances", retries=1)(
            backup.operator.task_id
        )
        load = task(load_testing.run_load_test, task_id="run_load_test", retries=0)(
            plan.operator.task_id, stage_instances.operator.task_id, backup.operator.task_id
        )
        # After stage 7 too (wired below): stage 7 audits the same instances. ALL_DONE: whatever happened.
        stop_instances = task(load_testing.stop_stage_instances, task_id="stop_stage_instances", trigger_rule=TriggerRule.ALL_DONE)(
            stage_instances.operator.task_id
        )
        chain(stage_instances, load, stop_instances)
    stage_06_task_ids = [stage_instances.operator.task_id, load.operator.task_id]

    with TaskGroup("stage_07_security_audit") as stage_07:
        http = task(security_audit.http_checks, task_id="http_checks", retries=0)(
            plan.operator.task_id, stage_instances.operator.task_id
        )
        scans = [
            task(security_audit.run_scanner, task_id=f"scan_{name}", retries=0)(
                name, plan.operator.task_id, stage_instances.operator.task_id
            )
            for name in security_audit.SCANNERS
        ]
        checks = [http, *scans]
        # ALL_DONE: a failed check or scanner is a reason to halt, which only the judge can give;
        # it skips itself when stage 7 never started (stage 6 halted or never ran).
        security_judge = task(security_audit.judge_security_audit, task_id="judge", trigger_rule=TriggerRule.ALL_DONE, retries=0)(
            plan.operator.task_id, http.operator.task_id, [check.operator.task_id for check in checks]
        )
        checks >> security_judge
    security_judge >> stop_instances

    with TaskGroup("stage_08_rollback_procedures") as stage_08:
        drill = task(rollback_procedures.rollback_drill, task_id="rollback_drill", retries=0)(
            plan, previous_cutover_task_id=previous.operator.task_id
        )

    with TaskGroup("stage_09_blue_green_setup") as stage_09:
        setup = task(blue_green_setup.blue_green_setup, task_id="blue_green_ready")(plan_task_id=plan.operator.task_id)

    with TaskGroup("stage_12_blue_monitoring") as stage_12:
        baseline = task(blue_monitoring.capture_blue_baseline, task_id="capture_blue_baseline", retries=5)(plan)
        blue_warm = task(blue_monitoring.verify_blue_warm, task_id="verify_blue_kept_warm")(plan_task_id=plan.operator.task_id)

    with TaskGroup("database_rollback") as database_rollback_group:
        database_halt = task(database_rollback.record_database_halt, task_id="halt_at_database", retries=0)(
            validate.operator.task_id
        )
        database_down = task(database_rollback.rollback_database, task_id="down_migration_verified")(
            plan_task_id=plan.operator.task_id
        )
        database_halt >> database_down

    decide_database = decide_validation(
        validate.operator.task_id, expand.operator.task_id, [rails_default.operator.task_id],
        database_halt.operator.task_id,
    )
    validate >> decide_database >> [rails_default, database_halt]
    # Stage 4 between stages 3 and 5: a failed check leaves stage 5 and everything after it
    # upstream_failed, so no traffic moves (the same path as a failed health check).
    rails_default >> stage_04 >> stage_05

    with TaskGroup("rollback") as rollback_group:
        # Two levels, in the plan's order: flags -> Rails (features move back without the router),
        # then traffic -> 100 % blue. The traffic level runs even if the flag level failed.
        flags_back = task(rollback.flags_to_rails, task_id="flags_to_rails", trigger_rule=TriggerRule.ONE_SUCCESS, retries=3, retry_delay=timedelta(seconds=1))(
            plan_task_id=plan.operator.task_id
        )
        # NONE_SKIPPED: after the flag level succeeded or failed, never when no rollback happened.
        route_back = task(rollback.route_all_to_blue, task_id="route_all_to_blue", trigger_rule=TriggerRule.NONE_SKIPPED, retries=3, retry_delay=timedelta(seconds=1))(
            plan_task_id=plan.operator.task_id
        )
        verify_back = task(rollback.verify_blue_serving, task_id="verify_blue_serving", retry_delay=timedelta(seconds=1))()
        flags_back >> route_back >> verify_back

    # Stage 6 decides whether anything moves at all (NONE_SKIPPED: a failed stage-6 task halts; a
    # stage 6 that never ran because an earlier stage failed skips the rest). A pass goes on to
    # stage 7, which audits the same stage instances; the instances stop after stage 7.
    decide_load = task.branch(verdict.decide_after_load_test, task_id="decide_after_load_test",
                              trigger_rule=TriggerRule.NONE_SKIPPED, retries=0)(
        load.operator.task_id, stage_06_task_ids, [check.operator.task_id for check in checks], "rollback.halt_at_load_testing"
    )
    load_halt = task(rollback.record_load_test_halt, task_id="halt_at_load_testing", task_group=rollback_group, retries=0)(
        load.operator.task_id, stage_06_task_ids
    )
    chain(stage_05, stage_06)
    load >> decide_load >> [*checks, load_halt]
    load_halt >> flags_back

    # After stage 7's judge and the instances' clean-up (NONE_SKIPPED: skipped with stage 7 when
    # stage 6 halted; a failed judge halts).
    decide_security = task.branch(verdict.decide_after_security_audit, task_id="decide_after_security_audit",
                                  trigger_rule=TriggerRule.NONE_SKIPPED, retries=0)(
        security_judge.operator.task_id, drill.operator.task_id, "rollback.halt_at_security_audit"
    )
    security_halt = task(rollback.record_security_halt, task_id="halt_at_security_audit", task_group=rollback_group, retries=0)(
        security_judge.operator.task_id
    )
    [security_judge, stop_instances] >> decide_security >> [drill, security_halt]
    security_halt >> flags_back

    # Every gate (and each step's stage 11) also probes the data written during its step: the same
    # ledger the final check reads.
    LEDGER = "{{ params.acknowledged_writes_file or '' }}"
    GATE_INPUTS = {"plan_task_id": plan.operator.task_id, "baseline_task_id": baseline.operator.task_id,
                   "acknowledged_writes_file": LEDGER,
                   # Green's new exception types per step (cutover_kit.error_tracking; the plan says report or FAIL).
                   "error_tracking_conn_id": ERROR_TRACKING}

    def traffic_step(stage, percent: int, next_task_id: str, previous_weights=None, previous_percent=None):
        """[approve -> decide_approval ->] flags -> weights -> smoke checks (stage 11) -> SLO gate ->
        decide: next step or halt. `stage`: the module of the enclosing stage group (stage 10's, or
        stage 13's for 100 %). The approval, where the default plan asks one, watches the previous step."""
        label = f"{percent} %"
        approval_head = None
        with TaskGroup(f"step_{percent}") as step:
            if percent in DAG_APPROVAL_STEPS:
                approve = StepApprovalOperator(
                    task_id="approve", percent=percent, watching_percent=previous_percent,
                    watching_weights_task_id=previous_weights.operator.task_id, plan_task_id=plan.operator.task_id,
                    baseline_task_id=baseline.operator.task_id, notifiers=[request_approval], retries=0,
                )
                approval_branch = decide_approval[stage].override(task_id="decide_approval")(
                    approve.task_id, f"{step.group_id}.set_flags", f"rollback.halt_at_{percent}_approval"
                )
                approve >> approval_branch
                approval_head = approve
            # Flags before weights: green serves the step's features itself before more users reach it.
            step_flags = task(stage.set_step_flags, task_id="set_flags")(percent, plan_task_id=plan.operator.task_id)
            weights = task(stage.set_traffic, task_id="set_weights")(percent, plan_task_id=plan.operator.task_id)
            # Stage 11 is the first task after the weights change: it also takes the first look at
            # the step's rows (the gate, one task later, probes them again on every poll).
            smoke = task(stage.smoke_checks, task_id="stage_11_smoke_checks", retries=0)(
                label, plan_task_id=plan.operator.task_id, weights=weights,
                acknowledged_writes_file=LEDGER,
            )
            gate = SLOGateOperator(
                task_id="slo_gate", step_label=label, weights_set_at=weights, retries=0, **GATE_INPUTS
            )
            branch = decide_step[stage].override(task_id="decide")(gate.task_id, next_task_id, f"rollback.halt_at_{percent}")
            chain(step_flags, weights, smoke, gate, branch)
            if approval_head is not None:
                approval_branch >> step_flags
        if approval_head is not None:
            approval_halt = task(rollback.record_approval_halt, task_id=f"halt_at_{percent}_approval",
                                 task_group=rollback_group, retries=0)(label, approval_head.task_id)
            approval_branch >> approval_halt >> flags_back
            approval_halts.append(approval_halt)
        halt = task(rollback.record_halt, task_id=f"halt_at_{percent}", task_group=rollback_group, retries=0)(
            label, gate.task_id, smoke.operator.task_id, weights.operator.task_id
        )
        branch >> halt >> flags_back
        return approval_head or step_flags, weights, branch, halt

    def step_head_id(group: str, percent: int) -> str:
        return f"{group}.step_{percent}." + ("approve" if percent in DAG_APPROVAL_STEPS else "set_flags")

    migration_steps = [p for p in DAG_STEPS if p < 100]
    step_ids = [step_head_id("stage_10_traffic_migration", p) for p in migration_steps]
    step_ids.append(step_head_id("stage_13_full_cutover", 100))
    halts, approval_halts, heads, tails = [load_halt, security_halt], [], [], []
    previous_weights, previous_percent = None, None
    with TaskGroup("stage_10_traffic_migration") as stage_10:
        for index, percent in enumerate(migration_steps):
            head, previous_weights, tail, halt = traffic_step(
                traffic_migration, percent, step_ids[index + 1], previous_weights, previous_percent)
            previous_percent = percent
            heads.append(head), tails.append(tail), halts.append(halt)

    with TaskGroup("stage_13_full_cutover") as stage_13:
        head, weights_100, tail, halt = traffic_step(
            full_cutover, 100, "stage_13_full_cutover.standby_watch", previous_weights, previous_percent)
        heads.append(head), tails.append(tail), halts.append(halt)
        standby = SLOGateOperator(
            task_id="standby_watch",
            step_label="100 % standby",
            weights_set_at=weights_100,
            bake_seconds_field="standby_seconds",
            **GATE_INPUTS,
            retries=0,
        )
        standby_branch = decide_step[full_cutover].override(task_id="decide_standby")(
            standby.task_id, blue_warm.operator.task_id, "rollback.halt_at_standby"
        )
        promote = task(full_cutover.record_promotion, task_id="promote")(plan)
    standby_halt = task(rollback.record_halt, task_id="halt_at_standby", task_group=rollback_group, retries=0)(
        "100 % standby", standby.task_id, None, weights_100.operator.task_id
    )
    halts.append(standby_halt)
    standby_branch >> standby_halt >> flags_back

    for tail, next_head in zip(tails, heads[1:]):
        tail >> next_head
    tails[-1] >> standby >> standby_branch >> blue_warm >> promote

    run_verdict = verdict_task(
        promote.operator.task_id,
        [h.operator.task_id for h in [database_halt, *halts, *approval_halts]],
        [verify_back.operator.task_id, database_down.operator.task_id],
        "verify_data_integrity",
    )
    chain(stage_01, version)
    chain(stage_08, stage_09, baseline, heads[0])
    # Zero data loss, proven at the end of every path: promoted, rolled back, and above all the
    # paths where something failed (a rollback not verified, a step that broke): ALL_DONE. It only reads.
    integrity = task(verdict.verify_data_integrity, task_id="verify_data_integrity", trigger_rule=TriggerRule.ALL_DONE)(
        acknowledged_writes_file=LEDGER
    )
    [promote, verify_back, database_down] >> integrity >> run_verdict

    # Stage 15 after the verdict, on every path. A teardown (trigger rule all-done when it has no
    # setup): Airflow leaves teardowns out of the run's state, so cutover_verdict stays the leaf
    # that decides it (a failed verdict still fails the run) and a report problem never does.
    with TaskGroup("stage_15_post_launch") as stage_15:
        report = task(post_launch.write_post_launch_report, task_id="write_report", doc_md=REPORT_DOC)()
    run_verdict >> report.as_teardown()

# Every stage transition, gate decision, rollback and the verdict post one line to cutover_notifications.
wire_cutover_notifications(dag)
