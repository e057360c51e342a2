"""Stage 1, deployment readiness (task group ``stage_01_deployment_readiness``): the plan and the
run's input files are valid, every Connection resolves, every endpoint answers, no earlier cutover
is in place (green has no traffic, the last run did not promote) unless the operator re-runs on
purpose, every metric template of the plan parses and answers with at most one series per color,
the plan's flag store reads cleanly (or its flags are absent, for stage 3 to create) and every app
reports its flags, and no emergency stop is latched.

Nothing here changes the world: a bad plan or a missing Connection stops the run before any side effect.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit import connections
from cutover_kit.control import CutoverStateError
from cutover_kit.flags.model import FlagsAbsent, FlagStoreError
from cutover_kit.flags.propagation import serving_summary
from cutover_kit.hooks.levers import app_reports
from cutover_kit.plan import PlanError, plan_for_params
from cutover_kit.promql import MetricTemplates
from cutover_kit.stages._shared import plan_of_run

log = logging.getLogger(__name__)


def validate_plan(dag_steps: list[int], dag_approval_steps: list[int] | None = None) -> dict[str, Any]:
    """Every input file the run will need, checked before anything moves: the plan (with the
    params' overrides), the stage-11 smoke checks, and the acknowledged-writes ledger if one is
    given. Returns the plan's dict form (XCom) that later tasks pull by this task's id."""
    from airflow.sdk import get_current_context

    params = dict(get_current_context()["params"])
    try:
        plan = plan_for_params(params)
    except PlanError as error:
        raise AirflowFailException(f"Plan refused: {error}") from error
    if list(plan.steps) != list(dag_steps):
        raise AirflowFailException(
            f"Plan refused: plan {plan.name!r} steps {list(plan.steps)} differ from this DAG's steps {list(dag_steps)} "
            "(the DAG's shape comes from include/plans/default.yaml)"
        )
    asked = list(plan.approvals.before_steps) if plan.approvals else []
    unwired = [step for step in asked if step not in (dag_approval_steps or [])]
    if unwired:
        raise AirflowFailException(
            f"Plan refused: plan {plan.name!r} approvals.before_steps {asked} ask before {unwired} %, where this DAG "
            f"has no approval task (it has them before {list(dag_approval_steps or [])}, from include/plans/default.yaml)"
        )
    validate_run_inputs(params.get("acknowledged_writes_file"))
    steps = " -> ".join(f"{step} %" for step in plan.steps)
    log.info(
        "Plan %r valid: steps %s, bake %s s, hold up to %s s, window %s s, >= %s requests, "
        "halt after %s breaches, standby %s s",
        plan.name, steps, plan.bake_seconds, plan.step_timeout_seconds, plan.window_seconds,
        plan.min_requests, plan.consecutive_breaches, plan.standby_seconds,
    )
    if plan.approvals:
        approvals = plan.approvals
        log.info("Approvals before %s: %s", ", ".join(f"{step} %" for step in approvals.before_steps),
                 "answered automatically (auto_approve, a rehearsal)" if approvals.auto_approve else
                 f"by {', '.join(approvals.assigned_users)} within {approvals.timeout_seconds} s, else rejected")
    else:
        log.info("Approvals: none; plan %r advances on its gates alone", plan.name)
    return plan.to_dict()


def validate_run_inputs(acknowledged_writes_file: str | None, checks_file: str | Path | None = None) -> None:
    """The smoke checks (first used at the first traffic step, stage 11) and the ledger (read at
    the very end) must be usable now: finding out after traffic moved would cost a rollback or
    an unverifiable run. Raises AirflowFailException naming the file and the problem."""
    from cutover_kit.acknowledged_writes import AcknowledgedWritesError, load_acknowledged_writes
    from cutover_kit.smoke import DEFAULT_CHECKS_FILE, SmokeCheckError, load_checks

    checks_path = Path(checks_file) if checks_file else DEFAULT_CHECKS_FILE
    try:
        checks = load_checks(checks_path)
    except SmokeCheckError as error:
        raise AirflowFailException(f"Smoke checks refused (stage 11 would run them): {error}") from error
    log.info("Smoke checks valid: %d checks in %s (%s)", len(checks), checks_path, ", ".join(c.name for c in checks))
    if not acknowledged_writes_file:
        log.info("No acknowledged-writes file given: the final integrity check will only compare columns")
        return
    try:
        ids = load_acknowledged_writes(acknowledged_writes_file)
    except AcknowledgedWritesError as error:
        raise AirflowFailException(f"Acknowledged writes refused: {error}") from error
    log.info("Acknowledged-writes file %s readable: %d order ids so far (read again at the end)",
             acknowledged_writes_file, len(ids))


def resolve_connections(plan_task_id: str | None = None,
                        conn_ids: tuple[str, ...] = connections.REQUIRED_CONNECTIONS) -> dict[str, Any]:
    """Every Connection the run needs resolves; with a plan (`plan_task_id`), those of its router."""
    from airflow.sdk import BaseHook

    if plan_task_id:
        plan = plan_of_run(plan_task_id)
        conn_ids = connections.required_connections(plan.router, (plan.gateway_api or {}).get("kubernetes_conn_id"))
    resolved, missing = {}, []
    for conn_id in conn_ids:
        try:
            if conn_id == connections.KUBERNETES:
                # The provider's default id may be absent: KubernetesHook then uses in-cluster credentials.
                from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

                conn = KubernetesHook.get_connection(conn_id)
            else:
                conn = BaseHook.get_connection(conn_id)
        except Exception as error:  # AirflowNotFoundException and backend errors alike
            missing.append(f"{conn_id} ({type(error).__name__})")
            continue
        resolved[conn_id] = f"{conn.conn_type}://{conn.host or ''}{':' + str(conn.port) if conn.port else ''}"
    if missing:
        raise AirflowFailException(f"Connections missing or unreadable: {', '.join(missing)}")
    reason = f"All {len(resolved)} connections resolve: {', '.join(resolved)}"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "connections": resolved}


def check_endpoints_reachable(plan_task_id: str) -> dict[str, Any]:
    from cutover_kit.hooks.levers import router_for_plan
    from cutover_kit.hooks.prometheus import PrometheusHook
    from cutover_kit.hooks.service import ServiceHook

    findings: dict[str, str] = {}
    problems: list[str] = []

    # Whether Prometheus scrapes each color is the plan's `up` template's question (check_metric_templates).
    prometheus = PrometheusHook()
    if not prometheus.is_online():
        problems.append(f"Prometheus at {prometheus.base_url} is not ready")
    else:
        findings["prometheus"] = prometheus.base_url

    router = router_for_plan(plan_of_run(plan_task_id))
    try:
        states = router.server_states()
        findings["router"] = f"{router.describe()}: " + ", ".join(f"{color} {state}" for color, state in sorted(states.items()))
    except Exception as error:
        problems.append(f"{router.describe()}: {error}")

    for conn_id in (connections.APP_ROUTER, connections.APP_BLUE, connections.APP_GREEN):
        probe = ServiceHook(conn_id).probe("GET", "/healthz")
        if probe.status is None:
            problems.append(f"{conn_id} at {probe.url} unreachable: {probe.error}")
        else:
            findings[conn_id] = f"HTTP {probe.status} in {probe.elapsed_ms:.0f} ms"

    if problems:
        raise AirflowFailException("Endpoints not ready: " + "; ".join(problems))
    reason = "Every endpoint answers: " + "; ".join(f"{k}: {v}" for k, v in findings.items())
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "endpoints": findings}


class TemplateCheck:
    """What Prometheus said to each of a plan's metric templates (stage 1), before traffic moves.

    ``refusals``: templates that are wrong and stay wrong (Prometheus cannot parse or execute
    them, they answer several series or a non-number, an ``up`` without a series: no scrape
    target); the run is refused naming them. ``unavailable``: Prometheus did not answer, which may
    clear up (the task retries). ``values``: "green.errors = 0" for each template that answered.
    No data (e.g. green's jobs before any job ran) is fine for every measure but ``up``.
    """

    def __init__(self, source: Any, templates: MetricTemplates, window_seconds: int, quantile: float) -> None:
        from cutover_kit.hooks.prometheus import PrometheusBadQuery, PrometheusError, PrometheusUnavailable

        self.refusals: list[str] = []
        self.unavailable: list[str] = []
        self.values: list[str] = []
        for name, promql in templates.checks(window_seconds, quantile):
            try:
                series = source.query(promql)
            except PrometheusBadQuery as error:
                self.refusals.append(f"metric template {name} does not parse: {error}")
                continue
            except PrometheusUnavailable as error:
                self.unavailable.append(f"metric template {name}: {error}")
                continue
            except PrometheusError as error:  # a bad answer: not Prometheus JSON, not a vector
                self.refusals.append(f"metric template {name}: {error}")
                continue
            self._judge(name, promql, series)

    def _judge(self, name: str, promql: str, series: list[dict[str, Any]]) -> None:
        if len(series) > 1:
            labels = "; ".join(_labels(sample) for sample in series[:3]) + ("; ..." if len(series) > 3 else "")
            self.refusals.append(f"metric template {name} returns {len(series)} series: {labels} "
                                 f"(aggregate it to one series per color): {promql}")
        elif not series:
            if name.endswith(".up"):
                color = name.split(".")[0]
                self.refusals.append(f"metric template {name} returns no data: Prometheus has no scrape target for {color}: {promql}")
            else:
                self.values.append(f"{name} no data yet")
        else:
            value = series[0].get("value")
            try:
                self.values.append(f"{name} = {float(value[1]):g}")
            except (TypeError, ValueError, IndexError):
                self.refusals.append(f"metric template {name} returns a sample that is not a number: {value!r:.100}: {promql}")


def _labels(sample: dict[str, Any]) -> str:
    metric = sample.get("metric") or {}
    return "{" + ",".join(f'{key}="{value}"' for key, value in sorted(metric.items())) + "}"


def check_metric_templates(plan_task_id: str) -> dict[str, Any]:
    """Every metric template of the plan, rendered with the plan's window, is asked of Prometheus
    now: a gate that finds out mid-step that its query does not parse, or sums the wrong series,
    would judge green on nothing. Changes nothing."""
    from cutover_kit.hooks.prometheus import PrometheusHook

    plan = plan_of_run(plan_task_id)
    check = TemplateCheck(PrometheusHook(), plan.metrics, plan.window_seconds, plan.slo.quantiles[0])
    source = plan.metric_templates or "inline metrics"
    if check.refusals:
        raise AirflowFailException(f"Metric templates ({source}) refused: " + "; ".join(check.refusals))
    if check.unavailable:
        raise AirflowException("Metric templates not checked, Prometheus did not answer: " + "; ".join(check.unavailable))
    latency = "" if plan.metrics.latency_available else "; latency unavailable in this set: the gate will not judge it"
    reason = f"Metric templates ({source}) parse and answer one series at most: {', '.join(check.values)}{latency}"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "metric_templates": plan.metric_templates}


def check_previous_cutover(plan_task_id: str) -> dict[str, Any]:
    """Refuse, before anything changes, a run that would undo a finished or half-done cutover:
    green already has traffic, or the last recorded outcome is a promotion. The param
    ``allow_rerun_reason`` starts over on purpose; stage 8 then reads ``starts_over`` from here.
    An unreadable router or state refuses for now (retried): unknown is not "no cutover"."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.cutover_state import CutoverStateHook
    from cutover_kit.previous_cutover import judge_previous_cutover
    from cutover_kit.stages._shared import router_of_run

    rerun_reason = get_current_context()["params"].get("allow_rerun_reason")
    try:
        green_percent = router_of_run(plan_task_id).read_weights().green_percent
        last = CutoverStateHook().last_outcome()
    except Exception as error:  # router or Redis unreachable, a misconfigured Connection, an unreadable record
        raise AirflowException(f"Cutover refused for now: cannot tell whether a cutover is in place: "
                               f"{type(error).__name__}: {error}") from error
    try:
        decision = judge_previous_cutover(green_percent, last, rerun_reason)
    except ValueError as error:
        raise AirflowFailException(f"Cutover refused: allow_rerun_reason unusable: {error}") from error
    if not decision.allowed:
        raise AirflowFailException(decision.line)
    (log.warning if decision.starts_over else log.info)(decision.line)
    return {"verdict": "PASS", "reason": decision.line, "starts_over": decision.starts_over,
            "green_percent": green_percent, "last_outcome": last.outcome if last is not None else None}


def check_flag_store(plan_task_id: str) -> dict[str, Any]:
    """The plan's flag store answers with a well-formed state (or with no cutover flags yet, which
    stage 3 creates) and every app reports its flags. Changes nothing; an unreachable,
    misconfigured or malformed store stops the run here."""
    from cutover_kit.hooks.flags import flag_store

    backend = plan_of_run(plan_task_id).flag_backend
    try:
        store = flag_store(backend)
        state = store.read()
        found = state.describe()
    except FlagsAbsent as error:  # a store the cutover never wrote to: usable, stage 3 creates them
        state, found = None, (f"flags absent: {', '.join(error.missing)}; stage 3 will create them at the "
                              "Rails-safe default")
    except FlagStoreError as error:
        raise AirflowException(f"Flag store not usable ({backend} backend): {error}") from error
    reports = app_reports()
    problems = [f"{app}: {report}" for app, report in reports.items() if isinstance(report, str)]
    problems += [f"{app} evaluates flags from {report.get('backend')!r}, the plan selects {backend!r}"
                 for app, report in reports.items()
                 if isinstance(report, dict) and report.get("evaluates_flags") and report.get("backend") != backend]
    if problems:
        raise AirflowFailException("Flags: apps not ready: " + "; ".join(problems))
    reason = f"Flag store {store.name} readable ({found}); apps: {serving_summary(reports)}"
    log.info(reason)
    return {"verdict": "PASS", "reason": reason, "flags": state.as_flags() if state is not None else None}


def check_emergency_stop() -> dict[str, Any]:
    """A latched stop blocks a new cutover until an operator acknowledges it (param
    ``acknowledge_emergency_stop``), so a cutover never resumes by itself after an emergency."""
    from airflow.sdk import get_current_context

    from cutover_kit.hooks.cutover_state import CutoverStateHook

    acknowledge = bool(get_current_context()["params"].get("acknowledge_emergency_stop"))
    hook = CutoverStateHook()
    try:
        stop = hook.emergency_stop()
        if stop is None:
            log.info("No emergency stop latched: the cutover may start")
            return {"verdict": "PASS", "reason": "no emergency stop latched"}
        if not acknowledge:
            raise AirflowFailException(
                f"Cutover refused: {stop.describe()}. It stays latched until a run is triggered with "
                "acknowledge_emergency_stop=true"
            )
        hook.clear_emergency_stop()
    except CutoverStateError as error:
        raise AirflowException(f"Cutover refused for now: {error}") from error
    reason = f"Emergency stop acknowledged and cleared by this run: {stop.describe()}"
    log.warning(reason)
    return {"verdict": "PASS", "reason": reason, "cleared": stop.to_json()}
