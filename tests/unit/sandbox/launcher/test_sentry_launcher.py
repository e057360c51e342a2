"""The sentry component's settings: green's traces sample rate is validated before anything starts."""

from __future__ import annotations

import pytest

from sandbox.launcher.errors import SandboxError
from sandbox.launcher.sentry import sentry_dsn, traces_sample_rate


def test_each_app_has_its_own_project_in_the_dsn():
    assert sentry_dsn("127.0.0.1", 18097, "blue") == "http://sandbox@127.0.0.1:18097/1"
    assert sentry_dsn("127.0.0.1", 18097, "green") == "http://sandbox@127.0.0.1:18097/2"


def test_traces_sample_rate_defaults_to_off_and_refuses_nonsense():
    assert traces_sample_rate({}) == "0"
    assert traces_sample_rate({"SANDBOX_TRACES_SAMPLE_RATE": "0.2"}) == "0.2"
    for bad in ("1.5", "-0.1", "often"):
        with pytest.raises(SandboxError, match=r"SANDBOX_TRACES_SAMPLE_RATE=.*must be a number in \[0, 1\]"):
            traces_sample_rate({"SANDBOX_TRACES_SAMPLE_RATE": bad})
