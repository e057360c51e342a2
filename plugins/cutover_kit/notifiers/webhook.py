"""WebhookNotifier: posts a Slack-compatible failure notice to the URL of a Connection.

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
        where = f"{notice.subject}"
        try:
            conn = BaseHook.get_connection(self.conn_id)
        except Exception as error:  # noqa: BLE001 - AirflowNotFoundException and secrets-backend errors alike
            log.error("Failure NOT notified: webhook Connection %r is unavailable (%s: %s); define it, e.g. "
                           "AIRFLOW_CONN_%s (see README, smoke DAG). The failure itself stands: %s",
                           self.conn_id, type(error).__name__, error, self.conn_id.upper(), where)
            return
        try:
            target = webhook_target(conn, self.conn_id)
        except WebhookConfigError as error:
            log.error("Failure NOT notified: %s. The failure itself stands: %s", error, where)
            return
        import requests  # lazy: the DAG file imports this module at parse time

        try:
            response = requests.post(target.url, json=slack_payload(notice), headers=target.headers,
                                     timeout=target.timeout_seconds)
        except requests.RequestException as error:
            log.error("Failure NOT notified: POST %s (Connection %r) failed: %s: %s. The failure itself stands: %s",
                           target.safe_url, self.conn_id, type(error).__name__, error, where)
            return
        if not 200 <= response.status_code < 300:
            log.error("Failure NOT notified: POST %s (Connection %r) answered HTTP %s: %s. The failure itself "
                           "stands: %s", target.safe_url, self.conn_id, response.status_code, response.text[:200], where)
            return
        log.info("Failure notified: POST %s (Connection %r) -> HTTP %s: %s", target.safe_url, self.conn_id,
                      response.status_code, where)

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
