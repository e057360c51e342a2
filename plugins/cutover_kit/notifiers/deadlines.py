"""Airflow Deadline Alerts on the cutover run: a run still going past its plan's worst case
notifies through the cutover_notifications webhook (the same one line as every other notice).

Deadline Alerts (Airflow 3.1+) belong to DAG runs: the scheduler computes ``reference + interval``
when the run is queued and, once that moment passes with the run unfinished, queues the callback;
an AsyncCallback runs in the triggerer. Tasks have no deadline of their own in Airflow 3.2, so
the standby watch gets its own run-level deadline at the moment its watch must have ended by the
plan's bounds (cutover_kit.run_deadlines), beside the whole run's. Both intervals are fixed when the
DAG is parsed: the longest over every shipped plan (module doc of run_deadlines).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from cutover_kit import connections

log = logging.getLogger(__name__)

#: What each deadline watches: the callback's `what` kwarg and the notice's step.
RUN = "run"
STANDBY_WATCH = "standby_watch"
WHAT = {RUN: "the cutover run", STANDBY_WATCH: "stage 13's standby watch (the run is still before its verdict)"}


def cutover_deadlines(plans: list[Any] | None = None, conn_id: str = connections.CUTOVER_NOTIFICATIONS) -> list[Any]:
    """The cutover DAG's two DeadlineAlerts (standby watch, run), from `plans` (default: every
    shipped plan; loading them is a few YAML files, fine at parse time)."""
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    from cutover_kit.plan import list_plans, load_plan
    from cutover_kit.run_deadlines import longest_bounds

    standby, run = longest_bounds(plans if plans is not None else [load_plan(name) for name in list_plans()])
    alerts = []
    for watched, seconds, plan_name in ((STANDBY_WATCH, standby.standby_end_seconds, standby.plan_name),
                                        (RUN, run.run_end_seconds, run.plan_name)):
        alerts.append(DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(seconds=seconds),
            callback=AsyncCallback(notify_deadline_missed, kwargs={
                "watched": watched, "bound_seconds": seconds, "plan_name": plan_name, "conn_id": conn_id}),
        ))
    return alerts


async def notify_deadline_missed(*, watched: str, bound_seconds: float, plan_name: str,
                                 conn_id: str = connections.CUTOVER_NOTIFICATIONS,
                                 context: dict[str, Any] | None = None) -> bool:
    """The deadline's callback (in the triggerer): one notice; never raises (a lost notice is logged)."""
    from asgiref.sync import sync_to_async

    return await sync_to_async(send_deadline_notice)(watched=watched, bound_seconds=bound_seconds,
                                                     plan_name=plan_name, conn_id=conn_id, context=context)


def send_deadline_notice(*, watched: str, bound_seconds: float, plan_name: str, conn_id: str,
                         context: dict[str, Any] | None) -> bool:
    from cutover_kit.cutover_notices import DEADLINE_MISSED, CutoverNotice, deadline_missed_text
    from cutover_kit.notifiers.cutover import CutoverNotifier

    try:
        dag_run = (context or {}).get("dag_run") or {}
        deadline = (context or {}).get("deadline") or {}
        text = deadline_missed_text(WHAT.get(watched, watched), bound_seconds, plan_name, dag_run,
                                    deadline.get("deadline_time"))
        notice = CutoverNotice(kind=DEADLINE_MISSED, text=text, dag_id=dag_run.get("dag_id"),
                               run_id=dag_run.get("dag_run_id") or dag_run.get("run_id"), step=watched)
    except Exception as error:  # noqa: BLE001 - the triggerer would only log it; say what it was
        log.error("Deadline notice NOT sent: could not build it (%s: %s) from %r", type(error).__name__, error, context)
        return False
    return CutoverNotifier(conn_id=conn_id).send(notice)
