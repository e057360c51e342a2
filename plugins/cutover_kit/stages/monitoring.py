"""Stage 4, monitoring (task group ``stage_04_monitoring``): the run proves its own observability
before traffic moves."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit import connections
from cutover_kit.error_tracking import ErrorTrackingError, judge_error_reporting

log = logging.getLogger(__name__)

REPORT_EXCEPTION_PATH = "/__fault/report_exception"
# The SDKs send from a background worker: measured here well under a second; the margin is for a
# loaded machine. The tracker's clock may differ from Airflow's: the check's events are told apart
# by their check id, so the look-back can be generous.
ERROR_REPORTING_TIMEOUT_SECONDS = 30.0
TRACKER_LOOKBACK_SECONDS = 600.0
COLOR_CONN_IDS = {"blue": connections.APP_BLUE, "green": connections.APP_GREEN}


def check_error_reporting(error_tracking_conn_id: str = connections.ERROR_TRACKING,
                          timeout_seconds: float = ERROR_REPORTING_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Each color raises one test exception (POST /__fault/report_exception, loopback-only, answered
    202 and never a 5xx, so no SLO counts it), then the tracker must hold an event from each color,
    tagged with this check's id, under the release the color says it reports with. Idempotent: a
    retry raises new test exceptions under a new check id."""
    from cutover_kit.hooks.error_tracking import ErrorTrackingHook
    from cutover_kit.hooks.service import ServiceHook

    check_id = f"stage4-{uuid.uuid4().hex[:12]}"
    since = time.time() - TRACKER_LOOKBACK_SECONDS
    expected: dict[str, str | None] = {}
    for color, conn_id in COLOR_CONN_IDS.items():
        probe = ServiceHook(conn_id).probe("POST", REPORT_EXCEPTION_PATH, {"check_id": check_id})
        body = probe.body if isinstance(probe.body, dict) else {}
        if probe.status == 412:  # configuration, not a glitch: a retry would not help
            raise AirflowFailException(f"Error reporting: {color} has no Sentry DSN configured ({body.get('error')}); "
                                       f"set SENTRY_DSN in its environment")
        if probe.status != 202:
            raise AirflowException(f"Error reporting: {color} did not raise its test exception: POST {probe.url} -> "
                                   f"{probe.status or probe.error} {str(probe.body)[:160]}")
        expected[color] = body.get("release")
        log.info("Error reporting: %s raised %s (event %s, release %s)", color, body.get("type"), body.get("event_id"),
                 body.get("release"))
    tracker = ErrorTrackingHook(error_tracking_conn_id)
    started = time.monotonic()
    received: dict[str, dict[str, int]] = {}
    while True:
        try:
            received = {color: tracker.releases(color, since, terms={"tags[check_id]": check_id}) for color in expected}
        except ErrorTrackingError as error:
            raise AirflowException(f"Error reporting: the tracker ({error_tracking_conn_id}) could not be read: {error}") from None
        ok, line = judge_error_reporting(expected, received, check_id)
        if ok or time.monotonic() - started > timeout_seconds:
            break
        time.sleep(0.5)
    seconds = round(time.monotonic() - started, 2)
    if not ok:
        raise AirflowException(f"{line} after {seconds} s")
    log.info("%s in %.2f s", line, seconds)
    return {"verdict": "PASS", "reason": line, "check_id": check_id, "releases": expected, "seconds": seconds}
