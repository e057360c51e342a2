"""Task callables of the scheduled `smoke` DAG: request files validated before any request, the
smoke checks (include/smoke/checks.yaml, the same list stage 11 of `cutover` runs) on one target,
and blue/green response parity (include/smoke/parity.yaml). Decisions live in cutover_kit.smoke
and cutover_kit.parity; this module only sends requests and logs.

Which failures are retried: a smoke check that fails may be a blip (a 503 while an app restarts),
so it raises AirflowException and the task's retries ask again. A parity difference between two
real answers is deterministic: it raises AirflowFailException (no retry; retrying would only
delay the alert). A malformed request file never fixes itself: AirflowFailException as well.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NoReturn

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit import connections
from cutover_kit.paths import REPO_ROOT
from cutover_kit.smoke import GREEN_OWN_CODE_HEADERS

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 3.0


def fail(message: str, retryable: bool) -> NoReturn:
    """Record the failure text for the notifier (XCom), then raise: retryable or not."""
    from airflow.sdk import get_current_context

    from cutover_kit.notify import FAILURE_XCOM_KEY

    try:
        get_current_context()["ti"].xcom_push(key=FAILURE_XCOM_KEY, value=message)
    except Exception as error:  # noqa: BLE001 - outside a task (unit use): the exception still says it all
        log.debug("failure text not recorded in XCom: %s", error)
    raise (AirflowException if retryable else AirflowFailException)(message)


def resolve_file(name: str) -> Path:
    """A request file named relative to the project root (as in the DAG params) or absolute."""
    path = Path(name)
    return path if path.is_absolute() else REPO_ROOT / path


def validate_request_files(checks_file: str, parity_file: str) -> dict[str, Any]:
    """Both request files parse and validate, before any request is sent."""
    from cutover_kit.parity import ParityFileError, load_parity
    from cutover_kit.smoke import SmokeCheckError, load_checks

    try:
        checks = load_checks(resolve_file(checks_file))
        spec = load_parity(resolve_file(parity_file))
    except (SmokeCheckError, ParityFileError) as error:
        fail(f"Smoke refused before any request: {error}", retryable=False)
    ignored = sorted({item.path for item in spec.ignore} | {i.path for r in spec.requests for i in r.ignore})
    line = (f"Smoke request files valid: {len(checks)} checks in {checks_file}; {len(spec.requests)} parity "
            f"requests in {parity_file}, ignoring {len(ignored)} declared paths ({', '.join(ignored) or 'none'})")
    log.info(line)
    return {"checks": len(checks), "parity_requests": len(spec.requests), "ignored_paths": ignored, "reason": line}


def run_smoke_checks(conn_id: str, checks_file: str) -> dict[str, Any]:
    """The smoke check list on one target (a color directly, or the router); one log line per check.
    Green, asked directly, serves its own code (the header stage 11 sends too), so these are the
    same checks stage 11 runs whatever the flags say."""
    from cutover_kit.hooks.service import ServiceHook
    from cutover_kit.smoke import direct_request_headers, load_checks, run_checks

    checks = load_checks(resolve_file(checks_file))
    hook = ServiceHook(conn_id, timeout_seconds=REQUEST_TIMEOUT_SECONDS)
    headers = direct_request_headers(conn_id)
    log.info("Smoke checks on %s (%s): %d checks%s", conn_id, hook.base_url, len(checks),
             f", sent with {headers}" if headers else "")
    results = run_checks(checks, conn_id, lambda method, path, body: hook.probe(method, path, body, headers=headers))
    for result in results:
        (log.info if result.ok else log.error)(result.line)
    failures = [result.line for result in results if not result.ok]
    if failures:
        fail(f"Smoke checks failed on {conn_id}: {len(failures)} of {len(results)}\n" + "\n".join(failures), retryable=True)
    reason = f"Smoke checks ok on {conn_id}: {len(results)} of {len(results)}"
    log.info(reason)
    return {"verdict": "PASS", "target": conn_id, "reason": reason, "results": [r.to_dict() for r in results]}


def check_parity(parity_file: str, blue_conn_id: str = connections.APP_BLUE, green_conn_id: str = connections.APP_GREEN) -> dict[str, Any]:
    """Every parity request to blue and to green (directly); one log line per differing field."""
    from cutover_kit.hooks.service import ServiceHook
    from cutover_kit.parity import Answer, compare, load_parity, summary_line

    spec = load_parity(resolve_file(parity_file))
    blue = ServiceHook(blue_conn_id, timeout_seconds=REQUEST_TIMEOUT_SECONDS)
    green = ServiceHook(green_conn_id, timeout_seconds=REQUEST_TIMEOUT_SECONDS)
    log.info("Parity of %d requests: %s (%s) vs %s (%s), green asked with %s", len(spec.requests), blue_conn_id,
             blue.base_url, green_conn_id, green.base_url, GREEN_OWN_CODE_HEADERS)
    results = []
    for request in spec.requests:
        answers = []
        for hook, headers in ((blue, None), (green, GREEN_OWN_CODE_HEADERS)):
            probe = hook.probe(request.method, request.path, request.body, headers=headers)
            answers.append(Answer(probe.status, probe.body, probe.error, probe.headers.get("x-served-by")))
        result = compare(request, answers[0], answers[1], spec.ignore_for(request))
        results.append(result)
        if result.ok:
            log.info("same %s (%s): HTTP %s from both", request.label, request.name, answers[0].status)
        for line in result.lines:
            log.error(line)
    summary = summary_line(results, blue_conn_id, green_conn_id)
    differing = [line for result in results for line in result.lines]
    if differing:
        log.error(summary)
        message = summary + "\n" + "\n".join(differing)
        # No answer at all may be a blip: the task's retries ask again. Two real, different answers won't change.
        fail(message, retryable=any(result.unreachable for result in results))
    log.info(summary)
    return {"verdict": "PASS", "reason": summary, "results": [result.to_dict() for result in results]}
