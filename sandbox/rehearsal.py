"""A cutover rehearsal: sandbox up -> traffic + scheduled faults -> one `cutover` DAG run -> report.

    python -m sandbox.rehearsal [--scenario happy|path.yaml] [--result rehearsal-result.json]

The scenario is validated before anything starts. The sandbox always comes down, even when the
run fails or is interrupted. Exit status 0 only when the run behaved as the scenario expects
(outcome, reason, zero non-injected failed requests, zero lost writes).

The console is for a person (sandbox/console.py): one line per task as it ends, a live line while a
gate bakes, the stage table; Airflow's full log goes to <result>.airflow.log beside the result
(path printed at the end, and recorded as `log_file`). VERBOSE=1 shows everything on the console.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sandbox import airflow_env
from sandbox.console import PLAIN_WIDTH, Console, output_to_file, task_header
from sandbox.dag_watch import watching

DAG_ID = "cutover"
STANDBY_HANDOVER_SECONDS = 8  # ~3 tasks at ~2 s each between the 100 % gate and the standby watch
REHEARSAL_ORDERS = 200_000  # ~200k orders, ~40k users, ~600k line items: stage 2 works on real volume


def _scenario_conf(scenario: Any) -> dict[str, Any]:
    """DAG run conf: the plan's name plus the scenario's overrides.

    The DAG's `plan` param takes only names of files in include/plans/ (an enum checked at trigger
    time), so a plan can reach the run by name only. A scenario whose plan is a file elsewhere is
    refused unless the stock plan of that name, with the same overrides, is the very plan the
    scenario was validated against (and its result will record): otherwise the run would test
    one plan and report another.
    """
    from cutover_kit.plan import PlanError, load_plan
    from cutover_kit.scenario import ScenarioError

    name = scenario.plan.name
    if name not in _plan_names():
        raise ScenarioError(f"scenario {scenario.name}: plan {name!r} is not a file in include/plans/ "
                            "(the cutover DAG runs only those)")
    overrides = {k: v for k, v in scenario.overrides.items() if v is not None}
    try:
        stock = load_plan(name, overrides)
    except PlanError as error:
        raise ScenarioError(f"scenario {scenario.name}: {error}") from error
    if stock != scenario.plan:
        mine, theirs = scenario.plan.to_dict(), stock.to_dict()
        differing = ", ".join(f"{key} {mine[key]!r} vs {theirs[key]!r}" for key in mine if mine[key] != theirs.get(key))
        raise ScenarioError(
            f"scenario {scenario.name}: its plan differs from include/plans/{name}.yaml, which the cutover DAG "
            f"would run instead (the DAG takes plan names only): {differing}. Put the plan in include/plans/ "
            "under its own name, or use the stock plan with overrides"
        )
    return {"plan": name, **overrides}


def schedule_entry(fault: Any, plan: Any) -> dict[str, Any]:
    """A scenario fault as the fault schedule wants it: stages become observed router percentages.

    `standby` fires once green has held 100 % for the step's bake time plus a margin for the
    gate's hand-over, i.e. inside the standby watch."""
    entry = {
        "color": fault.color,
        "fault": fault.fault,
        "error_fraction": fault.error_fraction,
        "added_latency_ms": fault.added_latency_ms,
        "max_concurrent": fault.max_concurrent,
        "weakness": fault.weakness,
        "fraction": fault.fraction,
    }
    if fault.after_seconds is not None:
        entry["after_seconds"] = fault.after_seconds
    else:
        entry["at_green_percent"] = fault.at_green_percent
        if fault.at_stage == "standby":
            entry["delay_seconds"] = plan.bake_seconds + STANDBY_HANDOVER_SECONDS
    return entry


def stage_fault_entries(faults: Any) -> list[dict[str, Any]]:
    """The faults of the stage instances ({color, body}, the file sandbox.launcher's stage-up reads)."""
    return [{"color": fault.color, "body": fault.app_fault_body()} for fault in faults if fault.stage_instances]


def first_bad_write(dsn: str, scenario: Any, ledger: list[dict[str, Any]], traffic_report: dict[str, Any]) -> float | None:
    """When a write fault's first damage happened: the earliest order whose old and new columns
    disagree (created_at, the database's clock: UTC), or the client's send time of the first
    dropped write; None without a write fault."""
    kinds = {fault.fault for fault in scenario.faults}
    if "corrupt_writes" in kinds:
        import psycopg2

        conn = psycopg2.connect(dsn, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                # A run that ended in the down migration has no new column left to compare.
                cur.execute("SELECT EXISTS (SELECT 1 FROM information_schema.columns "
                            "WHERE table_name = 'orders' AND column_name = 'amount')")
                if not cur.fetchone()[0]:
                    return None
                cur.execute("SELECT extract(epoch FROM min(created_at) AT TIME ZONE 'UTC') FROM orders "
                            "WHERE amount IS DISTINCT FROM round(amount_cents / 100.0, 2)")
                found = cur.fetchone()[0]
        finally:
            conn.close()
        return None if found is None else float(found)
    if "drop_writes" in kinds:
        lost = set(traffic_report.get("lost_write_ids") or [])
        times = [entry["t"] for entry in ledger if entry.get("write_id") in lost]
        return min(times) if times else None
    return None


def _plan_names() -> list[str]:
    from cutover_kit.plan import list_plans

    return list_plans()


def _prepare_airflow() -> None:
    """A fresh metadata DB per rehearsal: no leftover runs, ~1.5 s (vs ~7 s for `db migrate`)."""
    from airflow.utils import db

    db.resetdb()


def _task_records(run_id: str | None = None) -> list[Any]:
    """The cutover run's task records; without run_id, every run in the (per-rehearsal, fresh) database."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from sandbox.result import TaskRecord

    with create_session() as session:
        tis_query = select(TaskInstance).where(TaskInstance.dag_id == DAG_ID)
        xcoms_query = select(XComModel).where(XComModel.dag_id == DAG_ID)
        if run_id is not None:
            tis_query = tis_query.where(TaskInstance.run_id == run_id)
            xcoms_query = xcoms_query.where(XComModel.run_id == run_id)
        tis = session.scalars(tis_query).all()
        xcoms = session.scalars(xcoms_query).all()
        values = {(x.task_id, x.key): XComModel.deserialize_value(x) for x in xcoms}
        return [
            TaskRecord(
                task_id=ti.task_id,
                state=str(ti.state.value if hasattr(ti.state, "value") else ti.state) if ti.state else None,
                started_at=ti.start_date,
                ended_at=ti.end_date,
                return_value=values.get((ti.task_id, "return_value")),
                gate_result=values.get((ti.task_id, "gate_result")),
                smoke_result=values.get((ti.task_id, "smoke_result")),
                validation_failure=values.get((ti.task_id, "validation_failure")),
                load_test=values.get((ti.task_id, "load_test")),
                load_test_failure=values.get((ti.task_id, "load_test_failure")),
                security=values.get((ti.task_id, "security")),
                security_failure=values.get((ti.task_id, "security_failure")),
            )
            for ti in tis
        ]


def report_base_dir(result_path: Path) -> Path:
    """Where stage 15 writes this rehearsal's report: beside the result file, named after it."""
    return result_path.resolve().parent / f"{result_path.stem}-report"


def verbose_from_env() -> bool:
    return os.environ.get("VERBOSE", "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def _console(log_file: Path | None) -> Iterator[Console]:
    """The person's console; with a log file, everything else (Airflow, the sandbox) goes there."""
    if log_file is None:  # VERBOSE: everything on the console as it comes, progress as plain lines
        yield Console(sys.stdout, live=False, width=PLAIN_WIDTH)
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    live = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if live else PLAIN_WIDTH
    with output_to_file(log_file) as stream:
        yield Console(stream, live=live, width=width)


def run_rehearsal(scenario_ref: str, result_path: Path, *, verbose: bool | None = None) -> dict[str, Any]:
    from cutover_kit.scenario import load_scenario
    from sandbox.result import render_table

    scenario = load_scenario(scenario_ref)  # refused here, before anything starts
    conf = _scenario_conf(scenario)
    verbose = verbose_from_env() if verbose is None else verbose
    log_file = None if verbose else result_path.with_suffix(".airflow.log")
    try:
        with _console(log_file) as console:
            result = _rehearse(scenario, conf, result_path, console)
        result["log_file"] = str(log_file) if log_file else None
        result_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(render_table(result))
        print(f"result written to {result_path}")
    finally:
        if log_file is not None:
            print(f"Airflow's full log: {log_file}", flush=True)
    return result


def _rehearse(scenario: Any, conf: dict[str, Any], result_path: Path, console: Console) -> dict[str, Any]:
    expected = scenario.expect_outcome + (f" ({scenario.expect_reason_contains!r})" if scenario.expect_reason_contains else "")
    console.line(f"rehearsal {scenario.name}: plan {scenario.plan.name}, expecting {expected}; starting the sandbox")
    airflow_env.apply("rehearsal")
    # Stage 2 migrates the database for real: start from the legacy (Rails) schema with a
    # rehearsal-sized data set, unless the caller chose otherwise.
    os.environ.setdefault("SANDBOX_SCHEMA", "legacy")
    os.environ.setdefault("SANDBOX_ORDERS", str(REHEARSAL_ORDERS))
    # The apps evaluate the flags of the backend the plan writes to (file or Unleash).
    os.environ.setdefault("SANDBOX_FLAG_BACKEND", scenario.plan.flag_backend)
    # Stage 15 writes the post-launch report beside the result: <result stem>-report/cutover/<run id>/.
    from cutover_kit.stages.post_launch import REPORT_DIR_ENV

    os.environ.setdefault(REPORT_DIR_ENV, str(report_base_dir(result_path)))

    from cutover_kit.connections import HAPROXY
    from cutover_kit.routing.haproxy_runtime import HAProxyRuntimeRouter
    from sandbox.config import SandboxConfig
    from sandbox.faults import FaultController, FaultSchedule
    from sandbox.launcher import Sandbox
    from sandbox.result import build_result
    from sandbox.traffic import TrafficProcess, report

    config = SandboxConfig.from_env()
    sandbox = Sandbox(config)
    started = time.time()
    traffic = schedule = data_fault = None
    try:
        state = sandbox.up()
        console.line(f"sandbox up in {state.get('up_seconds')} s (state {config.state_dir})")
        apps = sandbox.app_versions()
        console.line("apps: " + "; ".join(f"{color} {info['runtime']} (source {info['version']})"
                                           for color, info in apps.items()))
        connections = sandbox.connections()
        for conn_id, connection in connections.items():
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
        router = HAProxyRuntimeRouter(backend="app", socket_path=connections[HAPROXY]["extra"]["socket_path"])
        router.set_green_percent(0)  # a rehearsal always starts from "all on blue"

        _prepare_airflow()
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(str(airflow_env.REPO_ROOT / "dags"), include_examples=False).get_dag(DAG_ID)
        # Airflow 3.2.2's dag.test() crashes when a run with Deadline Alerts succeeds:
        # DagRun.update_state looks the alerts up by id, but dag.test() never stored them and hands
        # over their dict form ("'dict' object has no attribute 'hex'"). A real scheduler stores
        # them (tests/e2e/test_deadline_scheduler.py proves a missed deadline notifies); a
        # rehearsal, minutes long against deadlines of hours, runs without them.
        dag.deadline = None

        # The generator runs in a child process: an in-process stall (provider discovery, the GX
        # import) must not freeze the traffic and pass for a server failure. The child keeps the
        # acknowledged-writes file current for the DAG and writes every request beside the result.
        ledger_file = config.state_dir / "acknowledged_writes.txt"
        traffic = TrafficProcess(
            config.router_url, rps=scenario.traffic_rps, max_seconds=scenario.traffic_max_seconds, seed=7,
            ledger_path=result_path.with_suffix(".ledger.jsonl"), acknowledged_writes=ledger_file,
            log_path=config.log_dir / "traffic.log",
        ).start()
        conf["acknowledged_writes_file"] = str(ledger_file)
        # Faults of the stage instances are applied by the launcher when stage 6 starts them.
        sandbox.stage_faults_file.write_text(json.dumps(stage_fault_entries(scenario.faults)))
        schedule = FaultSchedule(
            FaultController(config),
            [schedule_entry(fault, scenario.plan) for fault in scenario.faults if fault.on_live_instances],
            observe_green_percent=lambda: router.read_weights().green_percent,
            started_at=time.time(),
        )
        schedule.start()
        if scenario.corrupt_rows_after_backfill:
            from sandbox.data_faults import CorruptAfterBackfill

            data_fault = CorruptAfterBackfill(config.app_dsn(), scenario.corrupt_rows_after_backfill).start()

        console.line(f"cutover DAG run: {len(dag.task_dict)} tasks; one line per task attempt as it ends")
        console.line(task_header())
        dag_started = time.monotonic()
        with watching(console, _task_records):
            dag_run = dag.test(run_conf=conf)
        console.line(f"DAG run {dag_run.state} in {time.monotonic() - dag_started:.0f} s; stopping traffic, "
                     "measuring the requests and writes, stopping the sandbox")

        schedule.stop()
        ledger = traffic.stop()  # every request, also written beside the result for the audit
        fault_windows = schedule.fault_windows()
        if data_fault is not None:
            data_fault.stop()
            fault_windows += [window for window in [data_fault.window()] if window]
        for color in {fault.color for fault in scenario.faults}:
            FaultController(config).clear(color)
        traffic_report = report(ledger, config.app_dsn(), fault_windows)
        first_bad_write_at = first_bad_write(config.app_dsn(), scenario, ledger, traffic_report)
        notifications = _notifications(config.webhooks_url, started, console)
        for color, rss in sandbox.app_rss_mb().items():  # a crashed app that stayed down has none
            apps[color]["rss_mb"] = rss
        result = build_result(
            scenario={
                "name": scenario.name,
                "plan": scenario.plan.to_dict(),
                "expect_outcome": scenario.expect_outcome,
                "expect_reason_contains": scenario.expect_reason_contains,
            },
            records=_task_records(dag_run.run_id),
            final_weights=router.read_weights().to_dict(),
            fault_onsets=fault_windows,
            traffic_report=traffic_report,
            wall_seconds=time.time() - started,
            apps=apps,
            first_bad_write_at=first_bad_write_at,
            notifications=notifications,
        )
    finally:
        if schedule is not None:
            schedule.stop()
        if data_fault is not None:
            data_fault.stop()
        if traffic is not None:
            traffic.stop()  # reaped on every path: a failed or interrupted run leaves no generator behind
        sandbox.down()
    return result


def _notifications(webhooks_url: str, since: float, console: Console) -> list[dict[str, Any]]:
    """The run's cutover notices from the sandbox's webhook receiver; an unreadable receiver is one
    console line and an empty list (the notices are a side channel, the outcome stands)."""
    from sandbox.notifications import read_notifications

    try:
        notifications = read_notifications(webhooks_url, since)
    except (OSError, ValueError) as error:
        console.line(f"notifications NOT read from {webhooks_url}: {type(error).__name__}: {error}")
        return []
    console.line(f"notifications: {len(notifications)} received by the cutover_notifications webhook")
    return notifications


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="happy", help="scenario name (include/scenarios/) or YAML path")
    parser.add_argument("--result", default="rehearsal-result.json", type=Path, help="where to write the result")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.path[:0] = [str(airflow_env.REPO_ROOT), str(airflow_env.REPO_ROOT / "plugins")]
    from cutover_kit.scenario import ScenarioError

    try:
        result = run_rehearsal(args.scenario, args.result)
    except ScenarioError as error:
        print(f"Scenario refused: {error}", file=sys.stderr)
        return 2
    return 0 if result["behaved_as_expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
