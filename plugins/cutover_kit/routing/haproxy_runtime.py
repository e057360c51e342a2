"""HAProxy runtime API client (no Airflow): weights and server states over the stats socket.

The runtime API answers one command per connection in non-interactive mode, so each call opens
the socket, writes one line and reads to EOF. Changes are verified by reading them back.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass

from cutover_kit.routing import RouterError, RouterWeights, weight_change_order, weights_for_green_percent


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

    def command(self, line: str) -> str:
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
                sock.sendall(line.encode() + b"\n")
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
