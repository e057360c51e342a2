"""The one rule every load or scan target obeys: an http URL on the loopback interface.

Shared by the Locust user mix (include/load/locustfile.py, in Locust's own process) and the
runner, so a non-loopback host is refused before any request, wherever the URL comes from.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class TargetError(ValueError):
    """The target URL is not an http(s) URL on the loopback interface."""


def loopback_base_url(url: str) -> str:
    """`url` without a trailing slash, or TargetError naming what is wrong with it."""
    if not isinstance(url, str) or not url:
        raise TargetError(f"target must be a URL such as http://127.0.0.1:18082, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetError(f"target {url!r}: scheme must be http or https")
    host = parts.hostname or ""
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise TargetError(f"target {url!r}: host {host or '(none)'!r} is not loopback; load and scans stay on 127.0.0.1")
    try:
        port = parts.port
    except ValueError as error:
        raise TargetError(f"target {url!r}: {error}") from None
    if port is None:
        raise TargetError(f"target {url!r}: give the port explicitly")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise TargetError(f"target {url!r}: give the base URL only (no path, query or fragment)")
    return f"{parts.scheme}://{parts.netloc}"
