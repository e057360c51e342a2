"""The scheduled smoke DAG's direct checks of green send the header that makes green serve its
own code, exactly as stage 11 does, so both run the same checks against green's TypeScript code
(before this was fixed, ``checks_green`` sent no header and could be answered by Rails)."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException

from cutover_kit.hooks.service import Probe
from cutover_kit.smoke import GREEN_OWN_CODE_HEADERS, direct_request_headers


class RecordingHook:
    """Stands in for ServiceHook: records the headers of every probe, answers 503 (no service here)."""

    sent: list[tuple[str, str, dict[str, str] | None]] = []

    def __init__(self, conn_id: str, timeout_seconds: float = 3.0) -> None:
        self.conn_id = conn_id
        self.base_url = f"http://{conn_id}.invalid"

    def probe(self, method: str, path: str, json_body: Any = None, headers: dict[str, str] | None = None) -> Probe:
        RecordingHook.sent.append((self.conn_id, path, headers))
        return Probe(method, f"{self.base_url}{path}", 503, 1.0, body={"error": "down"})


@pytest.fixture
def recorded(monkeypatch):
    import cutover_kit.hooks.service

    RecordingHook.sent = []
    monkeypatch.setattr(cutover_kit.hooks.service, "ServiceHook", RecordingHook)
    return RecordingHook.sent


def test_only_green_is_asked_to_serve_its_own_code():
    assert GREEN_OWN_CODE_HEADERS == {"X-Cutover-Serve": "typescript"}
    assert direct_request_headers("app_green") == GREEN_OWN_CODE_HEADERS
    assert direct_request_headers("app_blue") is None and direct_request_headers("app_router") is None


@pytest.mark.parametrize("conn_id", ["app_green", "app_blue", "app_router"])
def test_scheduled_smoke_checks_send_the_header_stage_11_sends(recorded, conn_id):
    from cutover_kit.stages import smoke

    with pytest.raises(AirflowException, match=f"Smoke checks failed on {conn_id}"):
        smoke.run_smoke_checks(conn_id, "include/smoke/checks.yaml")
    assert recorded, "no request was sent"
    assert {headers and tuple(headers.items()) for _, _, headers in recorded} == {
        direct_request_headers(conn_id) and tuple(direct_request_headers(conn_id).items())}
