"""Stage 4, monitoring (task group ``stage_04_monitoring``): the run proves its own observability
before traffic moves. This module holds the structured-logs check; docs/observability.md."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from cutover_kit import connections
from cutover_kit.app_logs import check_shape, find_request, shape_verdict

log = logging.getLogger(__name__)

LOG_CHECK_WINDOW_SECONDS = 60.0
# A request line is written when the answer has left; the file is appended unbuffered by both
# apps, so the probe's line is there within milliseconds. The wait covers a loaded machine.
PROBE_LINE_WAIT_SECONDS = 5.0
APP_CONN_IDS = {"blue": connections.APP_BLUE, "green": connections.APP_GREEN}
PROBE_PATH = "/openapi.json"  # a read both colors serve themselves and log (probes like /readyz are not logged)


def check_json_logs(window_seconds: float = LOG_CHECK_WINDOW_SECONDS) -> dict[str, Any]:
    """Every line each color wrote in the last ``window_seconds`` parses as JSON and carries the
    agreed fields; a probe request with a known X-Request-Id must appear as a request line, so
    the check never passes on a silent app. A failure names the color, the line number and what
    is missing."""
    from cutover_kit.hooks.app_logs import AppLogsHook
    from cutover_kit.hooks.service import ServiceHook

    results: dict[str, Any] = {}
    failures = []
    for color in ("blue", "green"):
        probe_id = f"stage4-logs-{color}-{uuid.uuid4().hex[:12]}"
        answer = ServiceHook(APP_CONN_IDS[color]).probe("GET", PROBE_PATH, headers={"X-Request-Id": probe_id})
        if answer.status is None:
            raise AirflowFailException(f"{color} log check: the probe request got no answer ({answer.error})")
        if answer.headers.get("x-request-id") != probe_id:
            failures.append(f"{color} did not echo X-Request-Id {probe_id} (answered {answer.headers.get('x-request-id')!r})")
        hook = AppLogsHook(color)
        since = time.time() - window_seconds
        deadline = time.monotonic() + PROBE_LINE_WAIT_SECONDS
        while True:
            lines = hook.recent_lines(since=since)
            probe_line = find_request(lines, probe_id)
            if probe_line is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        check = check_shape(lines, color, since=since)
        passed, line = shape_verdict(check, probe_id, probe_line, window_seconds)
        (log.info if passed else log.error)(line)
        results[color] = {"passed": passed, "lines": check.checked, "request_lines": check.requests,
                          "problems": list(check.problems[:20]), "probe_request_id": probe_id, "line": line}
        if not passed:
            failures.append(line)
    if failures:
        raise AirflowFailException("Structured logs check failed: " + " | ".join(failures))
    return results
