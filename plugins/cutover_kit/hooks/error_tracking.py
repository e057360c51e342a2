"""ErrorTrackingHook: exception counts per color from Sentry's events API (or the sandbox's
receiver, sandbox/sentry_receiver.py, which answers the same subset of it).

The Connection (default ``error_tracking_default``, conn_type http):
  host/port or extra.base_url   the Sentry web (https://sentry.example.com) or the receiver
  password                      a Sentry auth token (sent as ``Authorization: Bearer``); the
                                receiver needs none
  extra.organization            the organization slug (required)
  extra.projects                {"blue": <project id>, "green": <project id>}; optional: without
                                it every project is searched and only the tag tells colors apart
  extra.color_tag               the tag naming the color on every event (default "color")

Each read is one ``GET /api/0/organizations/<org>/events/`` with ``field=error.type``,
``field=release`` or ``field=count()``, a ``query`` of ``tags[<color_tag>]:<color>`` terms,
``start``/``end`` in ISO 8601 and ``project``. That request is the documented Discover events
query of Sentry's web API. What is and is not compatible with a real Sentry:
- the same request shape, fields and answer (``{"data": [{"error.type": [...], "count()": n}]}``);
  ``error.type`` is the exception chain as an array in both, the raised exception last;
- a real Sentry pages (``per_page`` up to 100, a Link header) and rate-limits; this hook reads the
  first page, 100 groups, which is ample for the types of one step;
- the receiver refuses everything else (statsPeriod, sort, negations, OR): nothing here relies on it;
- this was tested against the receiver only: no real Sentry is reachable from this machine.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from cutover_kit import connections
from cutover_kit.error_tracking import ErrorTrackingError
from cutover_kit.hooks import http_base_url

MAX_GROUPS = 100


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ErrorTrackingHook(BaseHook):
    conn_name_attr = "error_tracking_conn_id"
    default_conn_name = connections.ERROR_TRACKING
    conn_type = "http"
    hook_name = "Error tracking (Sentry events API)"

    def __init__(self, error_tracking_conn_id: str = default_conn_name, timeout_seconds: float = 3.0) -> None:
        super().__init__()
        self.error_tracking_conn_id = error_tracking_conn_id
        self.timeout_seconds = timeout_seconds

    @cached_property
    def _settings(self) -> tuple[str, str, dict[str, str], str, str | None]:
        conn = self.get_connection(self.error_tracking_conn_id)
        extra = conn.extra_dejson
        organization = extra.get("organization")
        if not organization:
            raise ErrorTrackingError(f"Connection {self.error_tracking_conn_id!r} has no extra.organization "
                                     f"(the Sentry organization slug)")
        projects = {str(color): str(project) for color, project in (extra.get("projects") or {}).items()}
        return (http_base_url(conn, self.error_tracking_conn_id), str(organization), projects,
                str(extra.get("color_tag") or "color"), conn.password or None)

    def get_conn(self) -> requests.Session:
        session = requests.Session()
        token = self._settings[4]
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        return session

    @cached_property
    def session(self) -> requests.Session:
        return self.get_conn()

    def count(self, fields: list[str], *, color: str, since: float, until: float | None = None,
              terms: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Rows of ``fields`` + count() for one color's events in [since, until)."""
        base_url, organization, projects, color_tag, _ = self._settings
        query = " ".join(f"{key}:{value}" for key, value in {f"tags[{color_tag}]": color, **(terms or {})}.items())
        params: dict[str, Any] = {"field": [*fields, "count()"], "query": query, "start": iso(since),
                                  "per_page": MAX_GROUPS}
        if until is not None:
            params["end"] = iso(until)
        if color in projects:
            params["project"] = projects[color]
        url = f"{base_url}/api/0/organizations/{organization}/events/"
        try:
            response = self.session.get(url, params=params, timeout=self.timeout_seconds)
        except requests.RequestException as error:
            raise ErrorTrackingError(f"{url} did not answer: {type(error).__name__}: {error}") from None
        if response.status_code != 200:
            raise ErrorTrackingError(f"{url} answered {response.status_code}: {response.text[:200]}")
        try:
            rows = response.json()["data"]
        except (ValueError, KeyError, TypeError):
            raise ErrorTrackingError(f"{url} answered without a data list: {response.text[:200]}") from None
        if not isinstance(rows, list) or not all(isinstance(row, dict) and isinstance(row.get("count()"), int) for row in rows):
            raise ErrorTrackingError(f"{url} answered rows without an integer count(): {str(rows)[:200]}")
        return rows

    def exception_types(self, color: str, since: float, until: float | None = None) -> dict[str, int]:
        """{raised exception type: events} of one color in [since, until): the last type of each
        event's chain (the one raised; the ones before it are its causes)."""
        counts: dict[str, int] = {}
        for row in self.count(["error.type"], color=color, since=since, until=until):
            chain = row.get("error.type")
            raised = chain[-1] if isinstance(chain, list) and chain else (chain if isinstance(chain, str) and chain else "(no exception)")
            counts[raised] = counts.get(raised, 0) + row["count()"]
        return counts

    def releases(self, color: str, since: float, terms: dict[str, str] | None = None) -> dict[str, int]:
        """{release: events} of one color since ``since`` (matching ``terms``, e.g. a check id tag)."""
        return {str(row.get("release")): row["count()"]
                for row in self.count(["release"], color=color, since=since, terms=terms)}
