"""Failure notices for a generic webhook, as a Slack-compatible JSON payload. No Airflow, no network:
the notifier (notifiers/webhook.py) gathers a :class:`FailureNotice` from the callback context,
builds the payload here and POSTs it.

The payload is Slack's incoming-webhook format, which Mattermost, Rocket.Chat, Discord's ``/slack``
endpoint and most chat tools also accept::

    {
      "text": "Smoke FAILED: smoke.parity_blue_green (run scheduled__..., try 1)\\n<the error, one line per finding>",
      "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Smoke FAILED*: `smoke.parity_blue_green` ..."}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "```<the error>```"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "<log url|Task log>"}]}
      ]
    }

``text`` alone carries the whole message (clients that ignore blocks, and notification previews);
blocks only format it. Slack caps a section at 3,000 characters, so long errors are cut with a note.

The webhook's Connection (default id ``smoke_webhook``, conn_type http): host, port and schema
(http/https) give the base URL (or ``extra.base_url``), ``extra.endpoint`` the path; a password is
sent as ``Authorization: Bearer <password>``; ``extra.headers`` adds headers (e.g. a token header);
``extra.timeout_seconds`` (default 5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cutover_kit import connections
from cutover_kit.hooks import http_base_url

DEFAULT_WEBHOOK_CONN_ID = connections.SMOKE_WEBHOOK
# XCom key under which a smoke task records its failure text before raising (read back by the
# notifier when the callback context carries no exception).
FAILURE_XCOM_KEY = "smoke_failure"
SECTION_LIMIT = 3000  # Slack's limit for a section's text
DEFAULT_TIMEOUT_SECONDS = 5.0
# Run-level callback reasons that a task-level notice has already covered: the failed task's own
# callback posted the error itself, so the run's callback stays quiet instead of posting twice.
COVERED_RUN_REASONS = ("task_failure", "success")


class WebhookConfigError(ValueError):
    """The webhook Connection cannot be used; the message says which field is wrong."""


@dataclass(frozen=True)
class FailureNotice:
    title: str
    dag_id: str | None
    task_id: str | None
    run_id: str | None
    try_number: int | None = None
    error: str = ""
    log_url: str | None = None

    @property
    def subject(self) -> str:
        what = ".".join(part for part in (self.dag_id, self.task_id) if part) or "unknown DAG"
        details = [f"run {self.run_id}" if self.run_id else None, f"try {self.try_number}" if self.try_number else None]
        suffix = ", ".join(part for part in details if part)
        return f"{self.title}: {what}" + (f" ({suffix})" if suffix else "")


def notice_from_context(context: Mapping[str, Any], title: str, recorded_error: str | None = None) -> FailureNotice | None:
    """The notice for a task- or run-level failure callback context; None when there is nothing new
    to say (a run that failed because a task failed: that task's own callback reported it).

    The error comes from ``context["exception"]``; ``recorded_error`` (what the task recorded before
    raising, see FAILURE_XCOM_KEY) stands in when the context has none, as under ``dag.test()``.
    """
    reason = context.get("reason")
    if reason in COVERED_RUN_REASONS:
        return None
    ti = context.get("ti") or context.get("task_instance")
    run_level = "reason" in context
    dag = context.get("dag")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None)
    run_id = getattr(ti, "run_id", None) or context.get("run_id")
    if run_level:
        # A run-level failure (e.g. the run timed out): no task is to blame by name.
        return FailureNotice(title=title, dag_id=dag_id, task_id=None, run_id=run_id,
                             error=f"DAG run failed: {reason}")
    error = context.get("exception")
    if error is not None:
        error_text = str(error).strip() or type(error).__name__
    else:
        error_text = recorded_error or "task failed (no error recorded)"
    return FailureNotice(title=title, dag_id=dag_id, task_id=getattr(ti, "task_id", None), run_id=run_id,
                         try_number=getattr(ti, "try_number", None), error=error_text, log_url=_log_url(ti))


def _log_url(ti: Any) -> str | None:
    try:
        url = getattr(ti, "log_url", None)
    except Exception:  # noqa: BLE001 - a property reading config; the notice goes out without it
        return None
    return url if isinstance(url, str) else None


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"\n… ({len(text) - limit} more characters in the task log)"
    return text[: limit - len(note)] + note


def slack_payload(notice: FailureNotice) -> dict[str, Any]:
    """The Slack-compatible JSON body for one notice (see the module doc)."""
    text = clip(f"{notice.subject}\n{notice.error}", SECTION_LIMIT)
    what = ".".join(part for part in (notice.dag_id, notice.task_id) if part) or "unknown DAG"
    heading = f"*{notice.title}*: `{what}`" + (f" run `{notice.run_id}`" if notice.run_id else "")
    if notice.try_number:
        heading += f", try {notice.try_number}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(heading, SECTION_LIMIT)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "```" + clip(notice.error, SECTION_LIMIT - 6) + "```"}},
    ]
    if notice.log_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{notice.log_url}|Task log>"}]})
    return {"text": text, "blocks": blocks}


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def safe_url(self) -> str:
        """The URL for logs: scheme and host only, since webhook paths often are the secret."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/…" if parts.path not in ("", "/") else f"{parts.scheme}://{parts.netloc}"


def webhook_target(conn: Any, conn_id: str) -> WebhookTarget:
    """URL, headers and timeout from the webhook Connection; WebhookConfigError names what is wrong."""
    try:
        base = http_base_url(conn, conn_id)
    except ValueError as error:
        raise WebhookConfigError(str(error)) from None
    extra = conn.extra_dejson or {}
    if urlsplit(base).scheme not in ("http", "https"):
        raise WebhookConfigError(f"Connection {conn_id!r}: base URL {base!r} is not http(s)")
    endpoint = extra.get("endpoint", "")
    if not isinstance(endpoint, str) or (endpoint and not endpoint.startswith("/")):
        raise WebhookConfigError(f"Connection {conn_id!r}: extra.endpoint must be a path starting with /, got {endpoint!r}")
    headers = {"Content-Type": "application/json"}
    extra_headers = extra.get("headers", {})
    if not isinstance(extra_headers, dict) or not all(isinstance(v, str) for v in extra_headers.values()):
        raise WebhookConfigError(f"Connection {conn_id!r}: extra.headers must map header names to strings")
    headers.update({str(name): value for name, value in extra_headers.items()})
    if conn.password:
        headers["Authorization"] = f"Bearer {conn.password}"
    timeout = extra.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        raise WebhookConfigError(f"Connection {conn_id!r}: extra.timeout_seconds must be in (0, 60], got {timeout!r}")
    return WebhookTarget(url=base + endpoint, headers=headers, timeout_seconds=float(timeout))


def approval_request_payload(*, title: str, subject: str, body: str, link: str | None, dag_id: str, run_id: str,
                             task_id: str) -> dict[str, Any]:
    """The Slack-compatible body of a go/no-go request: the question, the details (who may answer,
    by when, what no answer means), and where to answer it."""
    where = f"`{dag_id}.{task_id}` run `{run_id}`"
    text = clip(f"{title}: {subject}\n{body}" + (f"\nAnswer: {link}" if link else ""), SECTION_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(f"*{title}*: {subject} ({where})", SECTION_LIMIT)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(body, SECTION_LIMIT)}},
    ]
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Approve or reject>"}]})
    return {"text": text, "blocks": blocks}
