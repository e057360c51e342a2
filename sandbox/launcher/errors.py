"""The launcher's one exception."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The sandbox could not be brought into the requested state; the message says why."""
