"""The offending color's log lines in a halt task's log (rollback.halt_at_<step>): what green
wrote in the window the step was judged on, errors and 5xx first (cutover_kit.app_logs).

Never fails the rollback: without the Connection, or with a file that cannot be read, it says so
in one line and returns.
"""

from __future__ import annotations

import logging
from typing import Any

from cutover_kit import connections
from cutover_kit.app_logs import OFFENDING_COLOR, fault_window, select_excerpt

log = logging.getLogger(__name__)


def log_offending_lines(decided_at: float, gate_result: dict[str, Any] | None, color: str = OFFENDING_COLOR) -> str:
    """Log the excerpt (a summary line, then one line per log line) and return the summary."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from cutover_kit.hooks.app_logs import AppLogsError, AppLogsHook

    conn_id = connections.APP_LOGS_CONN_IDS[color]
    start, end, basis = fault_window(decided_at, gate_result)
    try:
        hook = AppLogsHook(color)
        lines = hook.recent_lines(since=start)
        source = hook.source()
    except AirflowNotFoundException:
        note = f"No {color} log excerpt: Connection {conn_id} is not defined (extra.path = {color}'s log file turns it on)"
        log.info(note)
        return note
    except (AppLogsError, OSError) as error:
        note = f"No {color} log excerpt: {error}"
        log.warning(note)
        return note
    except Exception as error:  # noqa: BLE001 - an excerpt is a help; the rollback must go on whatever happens
        note = f"No {color} log excerpt: {type(error).__name__}: {error}"
        log.warning(note)
        return note
    excerpt = select_excerpt(lines, color, start, end)
    log.info("%s (window: %s)", excerpt.lines(source)[0], basis)
    for line in excerpt.lines(source)[1:]:
        log.info(line)
    return excerpt.summary
