"""Traffic routing: the interface the cutover talks to, and the weight arithmetic behind it.

A router splits traffic between the two colors by integer weights that always sum to
``TOTAL_WEIGHT``, so a green percentage maps to weights exactly (5 % -> blue 95 / green 5).
Implementations (HAProxy's runtime API, a Gateway API HTTPRoute) must make ``set_green_percent`` idempotent and
verify it by reading the weights back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

TOTAL_WEIGHT = 100

#: The routers a plan may choose (plan field ``router``): HAProxy's runtime API, or a Gateway API
#: HTTPRoute's weighted backendRefs patched through the Kubernetes API.
HAPROXY_ROUTER = "haproxy"
GATEWAY_API_ROUTER = "gateway_api"
ROUTERS = (HAPROXY_ROUTER, GATEWAY_API_ROUTER)
DEFAULT_ROUTER = HAPROXY_ROUTER


class RouterError(RuntimeError):
    """The router refused a command, is unreachable, or did not end up in the requested state."""


@dataclass(frozen=True)
class RouterWeights:
    blue: int
    green: int

    @property
    def green_percent(self) -> float:
        total = self.blue + self.green
        return 0.0 if total == 0 else 100.0 * self.green / total

    def to_dict(self) -> dict[str, int]:
        return {"blue": self.blue, "green": self.green}


def weights_for_green_percent(percent: int) -> RouterWeights:
    if not 0 <= percent <= 100 or int(percent) != percent:
        raise ValueError(f"green percent must be an integer in 0..100, got {percent!r}")
    return RouterWeights(blue=TOTAL_WEIGHT - int(percent), green=int(percent))


def weight_change_order(current: RouterWeights, target: RouterWeights) -> list[tuple[str, int]]:
    """Raise a weight before lowering the other, so the total never drops to zero mid-change
    (a zero total makes HAProxy answer 503 'no server available')."""
    changes = [(color, getattr(target, color)) for color in ("blue", "green") if getattr(current, color) != getattr(target, color)]
    return sorted(changes, key=lambda change: change[1] < getattr(current, change[0]))


@dataclass(frozen=True)
class CohortMapUpdate:
    """A cohort map swapped in and read back: which map, its new version, how many users, in how
    many runtime API payloads."""

    map_name: str
    version: int
    entries: int
    payloads: int


class TrafficRouter(Protocol):
    def read_weights(self) -> RouterWeights: ...

    def set_green_percent(self, percent: int) -> RouterWeights: ...

    def server_states(self) -> dict[str, str]: ...


class CohortRouter(Protocol):
    """A router that also sends cohort members to green (user id -> cohort map) and routes the
    other identified users by a sticky hash (cutover_kit.cohorts)."""

    def read_cohort_map(self) -> dict[str, str]: ...

    def replace_cohort_map(self, entries: dict[str, str]) -> CohortMapUpdate: ...

    def clear_cohort_map(self) -> CohortMapUpdate: ...
