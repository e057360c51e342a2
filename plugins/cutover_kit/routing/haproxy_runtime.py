"""HAProxy runtime API client (no Airflow): weights, server states and the cohort map over the
stats socket.

The runtime API answers one command per connection in non-interactive mode, so each call opens
the socket, writes one line (plus a payload for bulk map additions) and reads to EOF. Changes are
verified by reading them back.

The cohort map (user id -> cohort, include/haproxy/haproxy.cfg.tmpl) is replaced atomically:
``prepare map`` allocates a new version, ``add map @<ver> <map> <<`` fills it in payloads that
fit HAProxy's 16 kB buffer (tune.bufsize; a bigger payload is dropped without an error message),
``commit map @<ver>`` swaps it in at once, and ``show map`` reads it back. Requests in flight see
the old or the new map, never a half-filled one.
"""

from __future__ import annotations

import csv
import io
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from cutover_kit.cohorts import user_id_problem
from cutover_kit.routing import (
    CohortMapUpdate,
    RouterError,
    RouterWeights,
    weight_change_order,
    weights_for_green_percent,
)

# Well below tune.bufsize (16384) with room for the command line in front of the payload.
MAP_PAYLOAD_BYTES = 12000
_COHORT_VALUE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_NEW_VERSION = re.compile(r"New version created: (\d+)")
#: The routing map's key of the switch (include/haproxy/haproxy.cfg.tmpl reads the same name).
USER_ROUTING_KEY = "user_routing"


@dataclass(frozen=True)
class HAProxyRuntimeRouter:
    """A :class:`~cutover_kit.routing.TrafficRouter` over HAProxy's runtime API."""

    backend: str
    blue_server: str = "blue"
    green_server: str = "green"
    socket_path: str | None = None
    host: str | None = None
    port: int | None = None
    timeout_seconds: float = 2.0
    #: The cohort map as HAProxy names it (the file path in its configuration); None = no cohort routing.
    cohort_map: str | None = None
    #: The routing settings map (key "user_routing": "on" routes identified users by user).
    routing_map: str | None = None

    def command(self, line: str, payload: str | None = None) -> str:
        """Send one command (with an optional `<<` payload, ended by an empty line) and read the answer."""
        data = line.encode() + b"\n" if payload is None else f"{line} <<\n{payload}\n".encode()
        try:
            if self.socket_path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                address: object = self.socket_path
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                address = (self.host or "127.0.0.1", int(self.port or 0))
            with sock:
                sock.settimeout(self.timeout_seconds)
                sock.connect(address)
                sock.sendall(data)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as error:
            where = self.socket_path or f"{self.host}:{self.port}"
            raise RouterError(f"HAProxy runtime API at {where} unreachable: {error}") from error
        return b"".join(chunks).decode()

    def _server(self, color: str) -> str:
        return f"{self.backend}/{self.blue_server if color == 'blue' else self.green_server}"

    def read_weight(self, color: str) -> int:
        answer = self.command(f"get weight {self._server(color)}").strip()
        try:
            return int(answer.split()[0])
        except (IndexError, ValueError):
            raise RouterError(f"HAProxy refused 'get weight {self._server(color)}': {answer!r}") from None

    def read_weights(self) -> RouterWeights:
        return RouterWeights(blue=self.read_weight("blue"), green=self.read_weight("green"))

    def set_weights(self, target: RouterWeights) -> RouterWeights:
        for color, weight in weight_change_order(self.read_weights(), target):
            answer = self.command(f"set server {self._server(color)} weight {weight}").strip()
            if answer:  # HAProxy answers an empty line on success, an explanation on refusal
                raise RouterError(f"HAProxy refused weight {weight} for {self._server(color)}: {answer}")
        observed = self.read_weights()
        if observed != target:
            raise RouterError(f"weights read back as {observed.to_dict()}, expected {target.to_dict()}")
        return observed

    def set_green_percent(self, percent: int) -> RouterWeights:
        return self.set_weights(weights_for_green_percent(percent))

    def server_states(self) -> dict[str, str]:
        """Health-check status per color as HAProxy sees it ('UP', 'DOWN', 'MAINT', ...)."""
        rows = csv.DictReader(io.StringIO(self.command("show stat").lstrip("# ")))
        names = {self.blue_server: "blue", self.green_server: "green"}
        states = {
            names[row["svname"]]: row["status"]
            for row in rows
            if row.get("pxname") == self.backend and row.get("svname") in names
        }
        missing = {"blue", "green"} - states.keys()
        if missing:
            raise RouterError(f"backend {self.backend!r} has no server for {', '.join(sorted(missing))}")
        return states

    # ------------------------------------------------------------------ routing by user

    def user_routing_enabled(self) -> bool:
        """Whether identified users are routed by user (cohorts, sticky hash) rather than by the weights."""
        if not self.routing_map:
            return False
        return self._get_map_value(self.routing_map, USER_ROUTING_KEY) == "on"

    def set_user_routing(self, enabled: bool) -> bool:
        """Switch routing by user on or off (`add map` / `set map` on the routing map), verified."""
        if not self.routing_map:
            raise RouterError(f"no routing map configured for backend {self.backend!r} (Connection extra.routing_map)")
        self._put_map_value(self.routing_map, USER_ROUTING_KEY, "on" if enabled else "off")
        return enabled

    def _get_map_value(self, map_name: str, key: str) -> str | None:
        answer = self.command(f"get map {map_name} {key}")
        if "found=no" in answer:
            return None
        value = re.search(r'value="([^"]*)"', answer)
        if "found=yes" not in answer or not value:
            raise RouterError(f"HAProxy refused 'get map {map_name} {key}': {answer.strip()!r}")
        return value.group(1)

    def _put_map_value(self, map_name: str, key: str, value: str) -> None:
        verb = "set" if self._get_map_value(map_name, key) is not None else "add"
        reply = self.command(f"{verb} map {map_name} {key} {value}").strip()
        if reply:
            raise RouterError(f"HAProxy refused '{verb} map {map_name} {key} {value}': {reply}")
        observed = self._get_map_value(map_name, key)
        if observed != value:
            raise RouterError(f"map {map_name}: {key!r} read back as {observed!r}, expected {value!r}")

    # ------------------------------------------------------------------ cohort map

    def _map(self) -> str:
        if not self.cohort_map:
            raise RouterError(f"no cohort map configured for backend {self.backend!r} (Connection extra.cohort_map)")
        return self.cohort_map

    def read_cohort_map(self) -> dict[str, str]:
        """The live map (the committed version): user id -> cohort."""
        answer = self.command(f"show map {self._map()}")
        entries: dict[str, str] = {}
        for line in answer.splitlines():
            if not line:
                continue
            parts = line.split(" ", 2)  # "<entry ref> <key> <value>"
            if len(parts) != 3 or not parts[0].startswith("0x"):
                raise RouterError(f"HAProxy refused 'show map {self._map()}': {answer.strip()[:200]!r}")
            entries[parts[1]] = parts[2]
        return entries

    def replace_cohort_map(self, entries: Mapping[str, str]) -> CohortMapUpdate:
        """Swap the whole map for `entries` atomically (prepare, fill, commit), then read it back.

        Entries are checked before anything is sent: a key or value with a space or a line break
        would otherwise end the payload early or inject a runtime API command. A failure before
        the commit leaves the live map as it was (HAProxy drops an uncommitted version at the next
        commit); a read-back that differs raises RouterError.
        """
        map_name = self._map()
        lines = [f"{key} {value}\n" for key, value in _checked_entries(entries)]
        answer = self.command(f"prepare map {map_name}")
        version_match = _NEW_VERSION.search(answer)
        if not version_match:
            raise RouterError(f"HAProxy refused 'prepare map {map_name}': {answer.strip()!r}")
        version = int(version_match.group(1))
        payloads = 0
        for payload in _payloads(lines, MAP_PAYLOAD_BYTES):
            reply = self.command(f"add map @{version} {map_name}", payload)
            # Success is an empty line; no answer at all means the payload did not fit the buffer.
            if reply.strip() or not reply:
                raise RouterError(f"HAProxy refused 'add map @{version} {map_name}' ({payload.count(chr(10))} entries): "
                                  f"{reply.strip() or 'no answer (payload too large?)'}")
            payloads += 1
        reply = self.command(f"commit map @{version} {map_name}").strip()
        if reply:
            raise RouterError(f"HAProxy refused 'commit map @{version} {map_name}': {reply}")
        observed = self.read_cohort_map()
        if observed != dict(entries):
            missing = len(set(entries) - set(observed))
            extra = len(set(observed) - set(entries))
            changed = sum(1 for key in set(entries) & set(observed) if entries[key] != observed[key])
            raise RouterError(f"cohort map {map_name} read back with {len(observed)} entries, expected {len(entries)} "
                              f"({missing} missing, {extra} unexpected, {changed} with another cohort)")
        return CohortMapUpdate(map_name=map_name, version=version, entries=len(entries), payloads=payloads)

    def clear_cohort_map(self) -> CohortMapUpdate:
        """Empty the map (everyone back to the hash share), atomically, verified."""
        return self.replace_cohort_map({})

    def set_cohort_member(self, user_id: str, cohort: str) -> None:
        """Add one member to the live map, or move them to another cohort (`add map` / `set map`), verified.
        `add map` costs the same at any map size; `set map` and `del map` walk the whole map
        (benchmarks/cohort_map.py): to refresh a cohort, swap the map (replace_cohort_map)."""
        ((key, value),) = _checked_entries({user_id: cohort})
        self._put_map_value(self._map(), key, value)

    def remove_cohort_member(self, user_id: str) -> None:
        """Take one user out of the live map (`del map`), verified; absent already is fine."""
        ((key, _),) = _checked_entries({user_id: "lookup"})
        if self.cohort_of(key) is None:
            return
        reply = self.command(f"del map {self._map()} {key}").strip()
        if reply:
            raise RouterError(f"HAProxy refused 'del map {self._map()} {key}': {reply}")
        if self.cohort_of(key) is not None:
            raise RouterError(f"cohort map {self._map()}: {key!r} still present after 'del map'")

    def cohort_of(self, user_id: str) -> str | None:
        """The cohort the live map holds for a user (`get map`), or None."""
        ((key, _),) = _checked_entries({user_id: "lookup"})
        return self._get_map_value(self._map(), key)


def _checked_entries(entries: Mapping[str, str]) -> list[tuple[str, str]]:
    problems = []
    for key, value in entries.items():
        if problem := user_id_problem(key):
            problems.append(f"user id {problem}")
        if not isinstance(value, str) or not _COHORT_VALUE.match(value):
            problems.append(f"cohort {value!r} for user {key!r} is not a cohort name")
        if len(problems) >= 5:
            break
    if problems:
        raise RouterError("cohort map refused before sending: " + "; ".join(problems))
    return list(entries.items())


def _payloads(lines: list[str], limit: int) -> list[str]:
    """Lines grouped into payloads of at most `limit` bytes each."""
    payloads, current, size = [], [], 0
    for line in lines:
        if current and size + len(line) > limit:
            payloads.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        payloads.append("".join(current))
    return payloads
