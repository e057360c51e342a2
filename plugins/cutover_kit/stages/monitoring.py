"""Stage 4, monitoring (task group ``stage_04_monitoring``): before any traffic moves, the run
proves its own observability. Each task checks one thing, logs one line per decision and fails
with the reason; a failed stage 4 stops the run like a failed stage 5 (no traffic moves).

- ``check_rules_loaded``: Prometheus has every rule group of include/prometheus/rules/ loaded,
  every rule evaluated healthy (a fresh Prometheus gets a few seconds to evaluate them once).
- ``check_alert_routing``: a uniquely labelled critical test alert for green, posted to
  Alertmanager, is routed to the receiver the Connection names (``routing_test_receiver``) and,
  where a readback exists (the sandbox's webhook receiver), delivered there; then resolved.
- ``check_dashboard_queries``: every panel query of include/dashboards/cutover.json answers with
  data from Prometheus; a panel marked ``requires`` that answers nothing is reported, not failed.
- ``check_error_reporting``: each color raises one test exception; the error tracker must hold an
  event from each, under the release the color reports with.
- ``check_json_logs``: every line each color wrote in the last minute parses as JSON with the
  agreed fields, and a probe request with a known X-Request-Id shows up as a request line.

The decisions are pure (cutover_kit.observability); this module does the I/O. A check whose
subject is wrong (a rule group missing, an alert misrouted, a panel empty) fails at once
(AirflowFailException); an endpoint that did not answer is retried (AirflowException).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from cutover_kit import connections
from cutover_kit.app_logs import check_shape, find_request, shape_verdict
from cutover_kit.error_tracking import ErrorTrackingError, judge_error_reporting
from cutover_kit.paths import REPO_ROOT

log = logging.getLogger(__name__)

RULES_DIR = REPO_ROOT / "include" / "prometheus" / "rules"
DASHBOARD_FILE = REPO_ROOT / "include" / "dashboards" / "cutover.json"
# A Prometheus started seconds ago may not have evaluated every rule once (evaluation every 1 s in the sandbox).
RULES_SETTLE_SECONDS = 15.0
# Alertmanager lists a posted alert at once; the green-page route has group_wait 0 s in the sandbox.
ROUTING_TIMEOUT_SECONDS = 10.0
DELIVERY_TIMEOUT_SECONDS = 20.0
RESOLVE_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.25


def check_rules_loaded() -> dict[str, Any]:
    from cutover_kit.hooks.prometheus import PrometheusHook
    from cutover_kit.observability.rules import RulesAnswerError, group_names, judge_rules, parse_rule_groups
    from cutover_kit.yaml_loader import load_yaml

    files = sorted(RULES_DIR.glob("*.yml"))
    expected = group_names(load_yaml(path) for path in files)
    hook = PrometheusHook(connections.PROMETHEUS)
    deadline = time.monotonic() + RULES_SETTLE_SECONDS
    while True:
        url = f"{hook.base_url}/api/v1/rules"
        try:
            answer = hook.session.get(url, timeout=hook.timeout_seconds).json()
            verdict = judge_rules(parse_rule_groups(answer), expected)
        except (OSError, ValueError) as error:  # requests' errors are OSErrors; a body that is not JSON a ValueError
            if isinstance(error, RulesAnswerError):
                raise AirflowFailException(f"Stage 4: Prometheus rules: {error}") from error
            raise AirflowException(f"Stage 4: Prometheus rules could not be read at {url}: {error}") from error
        if verdict.settled or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    for line in verdict.lines:
        log.info(line)
    if not verdict.ok:
        failing = [line for line in verdict.lines if "loaded and healthy" not in line]
        raise AirflowFailException(f"Stage 4: alert and recording rules not ready: {'; '.join(failing)}")
    summary = f"Rules loaded: {len(expected)} groups ({', '.join(expected)}) from {len(files)} files, every rule healthy"
    log.info(summary)
    return {"verdict": "PASS", "reason": summary, "groups": expected}


def _test_id(run_id: str) -> str:
    # Label values may hold anything, but the id also goes into a matcher: keep it plain.
    return f"{re.sub(r'[^A-Za-z0-9_.:+-]', '_', run_id)[:80]}.{uuid.uuid4().hex[:8]}"


def _until(deadline: float, attempt: Any) -> Any:
    """attempt() until it returns something truthy or the deadline passes; its last answer."""
    while True:
        answer = attempt()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(POLL_SECONDS)


def check_alert_routing() -> dict[str, Any]:
    from airflow.sdk import get_current_context

    from cutover_kit.alerting import SYNTHETIC_LABEL
    from cutover_kit.hooks.alertmanager import AlertmanagerConfigError, AlertmanagerHook, AlertmanagerUnavailable
    from cutover_kit.observability.routing import (
        TEST_ALERT_NAME, delivered_to, judge_delivery, judge_routing, routed_receivers, synthetic_alert,
    )

    hook = AlertmanagerHook(connections.ALERTMANAGER)
    try:
        settings = hook.routing_settings()
    except AlertmanagerConfigError as error:
        raise AirflowFailException(f"Stage 4: {error}") from error
    if settings.receiver is None:
        raise AirflowFailException(
            f"Stage 4: Connection {connections.ALERTMANAGER!r} has no extra.routing_test_receiver: name the receiver "
            f"a critical alert for green must reach (the war room's pager), so the routing can be checked")
    expected = settings.receiver
    test_id = _test_id(get_current_context()["run_id"])
    matcher = [f'{SYNTHETIC_LABEL}="{test_id}"']
    posted_at = time.time()
    try:
        hook.post_alerts([synthetic_alert(test_id, posted_at)])
    except AlertmanagerUnavailable as error:
        raise AirflowException(f"Stage 4: test alert not accepted by Alertmanager: {error}") from error
    log.info("Test alert %s posted to Alertmanager at %s (critical, color=green, %s=%s); expecting receiver %r",
             TEST_ALERT_NAME, hook.base_url, SYNTHETIC_LABEL, test_id, expected)
    result: dict[str, Any] = {"test_id": test_id, "expected_receiver": expected}
    started = time.monotonic()
    try:
        receivers = _until(started + ROUTING_TIMEOUT_SECONDS, lambda: routed_receivers(hook.get_alerts(matcher), test_id))
        routing = judge_routing(receivers or [], expected, test_id)
        log.info(routing.line)
        result["routed_to"] = receivers or []
        if not routing.ok:
            raise AirflowFailException(f"Stage 4: {routing.line}")
        if settings.readback_url:
            found = _until(time.monotonic() + DELIVERY_TIMEOUT_SECONDS,
                           lambda: expected in (seen := delivered_to(hook.read_back(posted_at - 1.0), test_id)) and seen)
            delivered = found or delivered_to(hook.read_back(posted_at - 1.0), test_id)
            delivery = judge_delivery(delivered, expected, test_id, time.monotonic() - started)
            log.info(delivery.line)
            result.update(delivered_to=delivered, delivery_seconds=round(time.monotonic() - started, 2))
            if not delivery.ok:
                raise AirflowFailException(f"Stage 4: {delivery.line}")
        else:
            # Production: the receiver is a pager or a chat channel this task cannot read.
            log.info("Delivery not read back (Connection %r has no extra.readback_url): confirm in receiver %r's "
                     "channel that alert %s with %s=%s arrived", connections.ALERTMANAGER, expected, TEST_ALERT_NAME,
                     SYNTHETIC_LABEL, test_id)
            result["delivered_to"] = None
    except AlertmanagerUnavailable as error:
        raise AirflowException(f"Stage 4: routing check interrupted: {error}") from error
    finally:
        _resolve_test_alert(hook, test_id, matcher)
    seconds = round(time.monotonic() - started, 2)
    how = (f"delivered there in {result['delivery_seconds']} s (read back)" if result.get("delivered_to") is not None
           else "delivery to be confirmed in the receiver's channel")
    return {"verdict": "PASS", "reason": f"test alert {test_id} routed to {expected!r}, {how}; check {seconds} s "
                                         f"with the resolve", "seconds": seconds, **result}


def _resolve_test_alert(hook: Any, test_id: str, matcher: list[str]) -> None:
    """Post the test alert again ending now; logged, never raised (it expires by itself within minutes)."""
    from cutover_kit.observability.routing import TEST_ALERT_LIFETIME_SECONDS, routed_receivers, synthetic_alert

    try:
        hook.post_alerts([synthetic_alert(test_id, time.time(), resolved=True)])
        gone = _until(time.monotonic() + RESOLVE_TIMEOUT_SECONDS,
                      lambda: routed_receivers(hook.get_alerts(matcher), test_id) is None)
    except Exception as error:  # noqa: BLE001 - cleaning up must not hide the check's own outcome
        log.warning("Test alert %s NOT resolved (%s); it expires by itself within %d s", test_id, error,
                    TEST_ALERT_LIFETIME_SECONDS)
        return
    if gone:
        log.info("Test alert %s resolved: Alertmanager no longer lists it as active", test_id)
    else:
        log.warning("Test alert %s still listed %.0f s after resolving it; it expires by itself within %d s",
                    test_id, RESOLVE_TIMEOUT_SECONDS, TEST_ALERT_LIFETIME_SECONDS)


def check_dashboard_queries() -> dict[str, Any]:
    from cutover_kit.hooks.prometheus import PrometheusBadAnswer, PrometheusBadQuery, PrometheusHook, PrometheusUnavailable
    from cutover_kit.observability.dashboards import DashboardError, QueryOutcome, judge_dashboard, panel_queries

    try:
        queries = panel_queries(json.loads(DASHBOARD_FILE.read_text()))
    except (OSError, ValueError, DashboardError) as error:
        raise AirflowFailException(f"Stage 4: dashboard {DASHBOARD_FILE.name} unreadable: {error}") from error
    hook = PrometheusHook(connections.PROMETHEUS)
    outcomes = []
    for query in queries:
        try:
            series = tuple(sample.get("metric", {}) for sample in hook.query(query.expr))
            outcomes.append(QueryOutcome(query, series=series))
        except (PrometheusBadQuery, PrometheusBadAnswer) as error:  # the query is at fault: the panel is broken
            outcomes.append(QueryOutcome(query, error=str(error)))
        except PrometheusUnavailable as error:
            raise AirflowException(f"Stage 4: Prometheus did not answer the dashboard's queries: {error}") from error
    verdict = judge_dashboard(outcomes)
    for line in verdict.lines:
        log.info(line)
    summary = (f"Dashboard {DASHBOARD_FILE.name}: {len(queries) - len(verdict.failed) - len(verdict.not_met)} of "
               f"{len(queries)} queries answered with data, {len(verdict.not_met)} marked `requires` and empty (reported)")
    if not verdict.ok:
        raise AirflowFailException(f"Stage 4: {summary}; FAILED: {', '.join(verdict.failed)}")
    log.info(summary)
    return {"verdict": "PASS", "reason": summary, "not_met": list(verdict.not_met), "queries": len(queries)}


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
