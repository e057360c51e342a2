"""WebhookNotifier: posts a Slack-compatible failure notice to the URL of a Connection;
ApprovalRequestNotifier: the same webhook, for a go/no-go request with a link to answer it.

Used as ``on_failure_callback`` of the smoke DAG's tasks (each failed task after its last try, with
its error, e.g. the parity diff) and of the DAG itself (a run that failed without a failed task,
e.g. it timed out). Payload and Connection fields: see cutover_kit.notify.

A notification is a side channel: a missing or broken webhook Connection, or a webhook that does
not answer, is logged in one clear line and never raises, so the task's own failure (red in the
grid) is what Airflow records, not a notifier error.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier

from cutover_kit.notify import (
    DEFAULT_WEBHOOK_CONN_ID,
    FAILURE_XCOM_KEY,
    WebhookConfigError,
    notice_from_context,
    slack_payload,
    webhook_target,
)

log = logging.getLogger(__name__)


class WebhookNotifier(BaseNotifier):
    # Nothing is templated: under dag.test() a run-level callback gets a SerializedDAG, on which
    # BaseNotifier's template rendering fails before notify() could even log.
    template_fields = ()
    # An upper bound on the Connection's timeout_seconds (None: the Connection's, at most 60 s). A
    # notifier called inside a running step sets it low, so a silent webhook cannot hold the step.
    max_timeout_seconds: float | None = None

    def __init__(self, *, conn_id: str = DEFAULT_WEBHOOK_CONN_ID, title: str = "Smoke FAILED") -> None:
        super().__init__()
        self.conn_id = conn_id
        self.title = title

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        if self.template_fields:
            super().render_template_fields(context, jinja_env)

    def notify(self, context: Any) -> None:
        notice = notice_from_context(context, self.title, recorded_error=self._recorded_error(context))
        if notice is None:
            log.info("No run-level notification: reason %r was already notified by the failed task",
                          context.get("reason"))
            return
        self.post(slack_payload(notice), notice.subject, "Failure", "The failure itself stands")

    def post(self, payload: dict[str, Any], where: str, what: str, stands: str) -> bool:
        """POST one payload to the webhook Connection; logs one line either way, never raises.
        `what` starts the line ("Failure"), `where` names the run and task, and `stands` says what
        holds when the notice is lost."""
        try:
            conn = BaseHook.get_connection(self.conn_id)
        except Exception as error:  # noqa: BLE001 - AirflowNotFoundException and secrets-backend errors alike
            log.error("%s NOT notified: webhook Connection %r is unavailable (%s: %s); define it, e.g. "
                      "AIRFLOW_CONN_%s (see README, smoke DAG). %s: %s",
                      what, self.conn_id, type(error).__name__, error, self.conn_id.upper(), stands, where)
            return False
        try:
            target = webhook_target(conn, self.conn_id)
        except WebhookConfigError as error:
            log.error("%s NOT notified: %s. %s: %s", what, error, stands, where)
            return False
        import requests  # lazy: the DAG file imports this module at parse time

        timeout = target.timeout_seconds
        if self.max_timeout_seconds is not None:
            timeout = min(timeout, self.max_timeout_seconds)
        try:
            response = requests.post(target.url, json=payload, headers=target.headers, timeout=timeout)
        except requests.RequestException as error:
            log.error("%s NOT notified: POST %s (Connection %r) failed: %s: %s. %s: %s",
                      what, target.safe_url, self.conn_id, type(error).__name__, error, stands, where)
            return False
        if not 200 <= response.status_code < 300:
            log.error("%s NOT notified: POST %s (Connection %r) answered HTTP %s: %s. %s: %s",
                      what, target.safe_url, self.conn_id, response.status_code, response.text[:200], stands, where)
            return False
        log.info("%s notified: POST %s (Connection %r) -> HTTP %s: %s", what, target.safe_url, self.conn_id,
                 response.status_code, where)
        return True

    def _recorded_error(self, context: Any) -> str | None:
        """The failure text the task recorded in XCom, for contexts without ``exception``."""
        if "reason" in context or context.get("exception") is not None:
            return None
        ti = context.get("ti")
        try:
            value = ti.xcom_pull(task_ids=ti.task_id, key=FAILURE_XCOM_KEY)
        except Exception as error:  # noqa: BLE001 - the notice goes out without the detail
            log.warning("Could not read the recorded failure (%s: %s)", type(error).__name__, error)
            return None
        return value if isinstance(value, str) else None


class ApprovalRequestNotifier(WebhookNotifier):
    """Posts a go/no-go request (cutover_kit.operators.approval) to the same webhook: what is asked,
    who may answer, by when, what no answer means, and a link to the task's "required actions" page
    in the Airflow UI (the task's log page when the API's base_url is not configured)."""

    def __init__(self, *, conn_id: str = DEFAULT_WEBHOOK_CONN_ID, title: str = "Approval requested") -> None:
        super().__init__(conn_id=conn_id, title=title)

    def notify(self, context: Any) -> None:
        from cutover_kit.notify import approval_request_payload

        task, ti = context["task"], context["ti"]
        link = approval_link(context)
        payload = approval_request_payload(
            title=self.title, subject=task.subject, body=task.body or "", link=link,
            dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id)
        self.post(payload, f"{ti.dag_id}.{ti.task_id} run {ti.run_id}", "Approval request",
                  "The request stands in the Airflow UI and its REST API")


def approval_link(context: Any) -> str | None:
    """The UI page where the request is answered; the task's log URL when no base_url is configured."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    try:
        return HITLOperator.generate_link_to_ui_from_context(context=context)
    except Exception as error:  # noqa: BLE001 - ValueError without api.base_url; the notice goes out anyway
        log.warning("Approval link to the required-actions page unavailable (%s: %s); linking the task log",
                    type(error).__name__, error)
        url = getattr(context.get("ti"), "log_url", None)
        return url if isinstance(url, str) else None
