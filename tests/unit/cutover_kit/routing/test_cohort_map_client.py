"""The cohort-map side of the HAProxy runtime client, against scripted runtime API answers (the real
HAProxy is in tests/integration/test_cohort_routing.py): payload sizes, the command sequence of an
atomic swap, read-back, and refusals before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from cutover_kit.routing import RouterError
from cutover_kit.routing.haproxy_runtime import MAP_PAYLOAD_BYTES, HAProxyRuntimeRouter, _payloads

MAP = "/state/haproxy/cohorts.map"


@dataclass(frozen=True)
class ScriptedRouter(HAProxyRuntimeRouter):
    """Answers like HAProxy 2.6 for a map held in `live` (prepare/add/commit/show/get)."""

    live: dict = field(default_factory=dict)
    sent: list = field(default_factory=list)
    drop_adds: bool = False

    def command(self, line: str, payload: str | None = None) -> str:
        self.sent.append((line, payload))
        verb = line.split()[:2]
        if verb == ["prepare", "map"]:
            self.live["__next"] = {}
            return "New version created: 7\n\n"
        if verb == ["add", "map"]:
            if not self.drop_adds:
                for entry in (payload or "").splitlines():
                    key, value = entry.split(" ", 1)
                    self.live["__next"][key] = value
            return "\n"
        if verb == ["commit", "map"]:
            committed = self.live.pop("__next")
            self.live.clear()
            self.live.update(committed)
            return "\n"
        if verb == ["show", "map"]:
            return "".join(f"0x55d{index:05x} {key} {value}\n" for index, (key, value) in enumerate(self.live.items())) + "\n"
        raise AssertionError(f"unexpected command {line!r}")


def router(**changes: object) -> ScriptedRouter:
    return ScriptedRouter(backend="app", socket_path="/unused", cohort_map=MAP, **changes)


def test_payloads_stay_under_the_limit_and_keep_every_line() -> None:
    lines = [f"user-{n:06d} beta\n" for n in range(5000)]
    payloads = _payloads(lines, 1000)
    assert all(len(payload) <= 1000 for payload in payloads)
    assert "".join(payloads) == "".join(lines)
    assert _payloads([], 1000) == []


def test_an_atomic_swap_prepares_fills_commits_and_reads_back() -> None:
    scripted = router()
    entries = {f"user-{n}": "beta" for n in range(3000)}
    update = scripted.replace_cohort_map(entries)
    assert (update.map_name, update.version, update.entries) == (MAP, 7, 3000)
    commands = [line for line, _ in scripted.sent]
    assert commands[0] == f"prepare map {MAP}" and commands[-2:] == [f"commit map @7 {MAP}", f"show map {MAP}"]
    adds = [(line, payload) for line, payload in scripted.sent if line.startswith("add map")]
    assert len(adds) == update.payloads > 1 and all(line == f"add map @7 {MAP}" for line, _ in adds)
    assert all(len(payload.encode()) <= MAP_PAYLOAD_BYTES for _, payload in adds)
    assert scripted.read_cohort_map() == entries


def test_a_read_back_that_differs_is_an_error_naming_the_difference() -> None:
    with pytest.raises(RouterError, match=r"read back with 0 entries, expected 2 \(2 missing, 0 unexpected"):
        router(drop_adds=True).replace_cohort_map({"1": "beta", "2": "beta"})


def test_bad_entries_are_refused_before_any_command() -> None:
    scripted = router()
    with pytest.raises(RouterError, match="cohort map refused before sending: user id '1 2' is not"):
        scripted.replace_cohort_map({"1 2": "beta"})
    assert scripted.sent == []


def test_show_map_answers_that_are_not_entries_are_errors() -> None:
    @dataclass(frozen=True)
    class Unknown(HAProxyRuntimeRouter):
        def command(self, line: str, payload: str | None = None) -> str:
            return "Unknown map identifier. Please use #<id> or <file>.\n\n"

    with pytest.raises(RouterError, match="refused 'show map /state/haproxy/cohorts.map': 'Unknown map identifier"):
        Unknown(backend="app", socket_path="/unused", cohort_map=MAP).read_cohort_map()


def test_without_maps_routing_by_user_is_off_and_cannot_be_switched_on() -> None:
    plain = HAProxyRuntimeRouter(backend="app", socket_path="/unused")
    assert plain.user_routing_enabled() is False
    with pytest.raises(RouterError, match="no routing map configured for backend 'app'"):
        plain.set_user_routing(True)
    with pytest.raises(RouterError, match="no cohort map configured"):
        plain.replace_cohort_map({})
