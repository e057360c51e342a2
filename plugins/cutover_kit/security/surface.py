"""Route surface of the two colors from their OpenAPI documents (Rails: config/openapi.json, TS:
src/openapi.ts, both served at /openapi.json): routes one color answers and the other does not.
Path parameter names are ignored ({id} and {user_id} are the same route)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cutover_kit.security.findings import Finding, normalise

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
_PARAM = re.compile(r"\{[^}]+\}")


def routes(document: Mapping[str, Any]) -> set[str]:
    """'GET /api/users/{}' for every operation of an OpenAPI document."""
    paths = document.get("paths")
    if not isinstance(paths, Mapping) or not paths:
        raise ValueError("not an OpenAPI document: no 'paths'")
    return {f"{method.upper()} {_PARAM.sub('{}', path)}" for path, item in paths.items() for method in item if method in METHODS}


def surface_findings(blue_document: Mapping[str, Any], green_document: Mapping[str, Any],
                     ignore: tuple[str, ...] = ()) -> list[Finding]:
    """A finding per route only one color declares (`ignore`: routes known to differ, e.g. ops)."""
    blue, green = routes(blue_document), routes(green_document)
    findings = []
    for color, only, other in (("green", green - blue, "blue"), ("blue", blue - green, "green")):
        for route in sorted(only - set(ignore)):
            findings.append(normalise({"id": f"surface-only-{color}", "severity": "medium" if color == "green" else "low",
                                       "color": color, "where": route,
                                       "evidence": f"{color} declares {route}, {other} does not"}))
    return findings
