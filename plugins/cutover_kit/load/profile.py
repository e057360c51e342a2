"""The load profile of one Locust run: target, step load shape and caps, carried to Locust's
process through environment variables (LOAD_*), so the runner and the user mix read one format.

A step holds `users` concurrent users (reached at `spawn_rate` users/s) for `step_seconds`; the
steps run in order. An optional :class:`StressPhase` follows in the same run: `users` past the
last step for `seconds` (how each color fails), then `recovery_users` (light load) for
`recovery_seconds` (whether it comes back). The run ends after the last phase, or earlier at
`max_requests`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cutover_kit.load.target import TargetError, loopback_base_url

# Bounds that keep a run short and loopback traffic modest on a shared 2-core machine.
MAX_STEPS = 20
MAX_USERS = 500
MAX_STEP_SECONDS = 300
MAX_REQUESTS = 1_000_000
WEBSOCKET_MODES = ("auto", "off")
# X-Cutover-Serve on every request: which implementation a strangler app (green) must run itself
# on a direct request, whatever its flags say (they stay at Rails until traffic moves).
SERVE_VALUES = ("typescript", "rails")


class ProfileError(ValueError):
    """A load profile that cannot run; the message names the field."""


@dataclass(frozen=True)
class Step:
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class StressPhase:
    users: int
    seconds: float
    recovery_users: int
    recovery_seconds: float


# The recovery phase must hold this many seconds at least: recovered means its last
# RECOVERY_HOLD_SECONDS seconds are within the SLO (cutover_kit.load.stress), and one more second
# tells a recovery from load that never broke.
MIN_RECOVERY_SECONDS = 3


@dataclass(frozen=True)
class LoadProfile:
    target: str
    steps: tuple[Step, ...]
    step_seconds: float
    max_requests: int
    # Pause of each simulated user between two of its requests: the load is closed-loop, so the
    # request rate grows with the user count until the app saturates (the knee).
    wait_seconds: float = 0.05
    request_timeout_seconds: float = 5.0
    # Seeded ids the reads pick from (sandbox.datagen: users = orders // 5).
    user_ids: int = 1000
    order_ids: int = 5000
    websocket: str = "auto"
    serve: str | None = None
    stress: StressPhase | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "target", loopback_base_url(self.target))
        except TargetError as error:
            raise ProfileError(f"target: {error}") from None
        if not self.steps or len(self.steps) > MAX_STEPS:
            raise ProfileError(f"steps: give 1-{MAX_STEPS} steps, got {len(self.steps)}")
        for index, step in enumerate(self.steps):
            if not 1 <= step.users <= MAX_USERS:
                raise ProfileError(f"steps[{index}].users must be 1-{MAX_USERS}, got {step.users}")
            if not 0 < step.spawn_rate <= MAX_USERS:
                raise ProfileError(f"steps[{index}].spawn_rate must be in (0, {MAX_USERS}], got {step.spawn_rate}")
        if not 1 <= self.step_seconds <= MAX_STEP_SECONDS:
            raise ProfileError(f"step_seconds must be 1-{MAX_STEP_SECONDS}, got {self.step_seconds}")
        if not 1 <= self.max_requests <= MAX_REQUESTS:
            raise ProfileError(f"max_requests must be 1-{MAX_REQUESTS}, got {self.max_requests}")
        if not 0 <= self.wait_seconds <= 10:
            raise ProfileError(f"wait_seconds must be 0-10, got {self.wait_seconds}")
        if not 0 < self.request_timeout_seconds <= 60:
            raise ProfileError(f"request_timeout_seconds must be in (0, 60], got {self.request_timeout_seconds}")
        if self.user_ids < 1 or self.order_ids < 1:
            raise ProfileError("user_ids and order_ids must be at least 1 (the seeded id ranges)")
        if self.websocket not in WEBSOCKET_MODES:
            raise ProfileError(f"websocket must be one of {WEBSOCKET_MODES}, got {self.websocket!r}")
        if self.serve is not None and self.serve not in SERVE_VALUES:
            raise ProfileError(f"serve must be one of {SERVE_VALUES} or unset, got {self.serve!r}")
        if self.stress is not None:
            self._check_stress(self.stress)

    def _check_stress(self, stress: StressPhase) -> None:
        top = max(step.users for step in self.steps)
        if not top < stress.users <= MAX_USERS:
            raise ProfileError(f"stress.users must be above the last step's {top} users (past the knee) and at most "
                               f"{MAX_USERS}, got {stress.users}")
        if not 1 <= stress.seconds <= MAX_STEP_SECONDS:
            raise ProfileError(f"stress.seconds must be 1-{MAX_STEP_SECONDS}, got {stress.seconds}")
        if not 1 <= stress.recovery_users < stress.users:
            raise ProfileError(f"stress.recovery_users must be 1 to below stress.users ({stress.users}), got {stress.recovery_users}")
        if not MIN_RECOVERY_SECONDS <= stress.recovery_seconds <= MAX_STEP_SECONDS:
            raise ProfileError(f"stress.recovery_seconds must be {MIN_RECOVERY_SECONDS}-{MAX_STEP_SECONDS}, "
                               f"got {stress.recovery_seconds}")

    @property
    def steps_seconds(self) -> float:
        """Seconds of the step load alone (the knee is found there)."""
        return self.step_seconds * len(self.steps)

    @property
    def duration_seconds(self) -> float:
        tail = self.stress.seconds + self.stress.recovery_seconds if self.stress else 0
        return self.steps_seconds + tail

    def phase_at(self, run_seconds: float) -> tuple[str, int, float] | None:
        """(phase, users, spawn rate) at `run_seconds` into the run: phase "step", "stress" or
        "recovery"; None once the run is over. Users come and go within one second."""
        if run_seconds < self.steps_seconds:
            step = self.steps[int(run_seconds // self.step_seconds)]
            return "step", step.users, step.spawn_rate
        if self.stress is None:
            return None
        after = run_seconds - self.steps_seconds
        if after < self.stress.seconds:
            return "stress", self.stress.users, float(self.stress.users)
        if after < self.stress.seconds + self.stress.recovery_seconds:
            # Stopping users is as quick as starting them: the drop to light load takes one second.
            return "recovery", self.stress.recovery_users, float(self.stress.users)
        return None

    def to_env(self) -> dict[str, str]:
        return {
            "LOAD_TARGET_HOST": self.target,
            "LOAD_STEPS": ",".join(f"{step.users}:{step.spawn_rate:g}" for step in self.steps),
            "LOAD_STEP_SECONDS": f"{self.step_seconds:g}",
            "LOAD_MAX_REQUESTS": str(self.max_requests),
            "LOAD_WAIT_SECONDS": f"{self.wait_seconds:g}",
            "LOAD_REQUEST_TIMEOUT_SECONDS": f"{self.request_timeout_seconds:g}",
            "LOAD_USER_IDS": str(self.user_ids),
            "LOAD_ORDER_IDS": str(self.order_ids),
            "LOAD_WEBSOCKET": self.websocket,
            "LOAD_SERVE": self.serve or "",
            # USERS:SECONDS:RECOVERY_USERS:RECOVERY_SECONDS, or empty: no stress phase.
            "LOAD_STRESS": (f"{self.stress.users}:{self.stress.seconds:g}:{self.stress.recovery_users}:"
                            f"{self.stress.recovery_seconds:g}" if self.stress else ""),
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoadProfile:
        if not env.get("LOAD_TARGET_HOST"):
            raise ProfileError("LOAD_TARGET_HOST is not set (the loopback base URL of one color)")
        return cls(
            target=env["LOAD_TARGET_HOST"],
            steps=parse_steps(env.get("LOAD_STEPS", "")),
            step_seconds=_number(env, "LOAD_STEP_SECONDS", "10"),
            max_requests=int(_number(env, "LOAD_MAX_REQUESTS", "20000")),
            wait_seconds=_number(env, "LOAD_WAIT_SECONDS", "0.05"),
            request_timeout_seconds=_number(env, "LOAD_REQUEST_TIMEOUT_SECONDS", "5"),
            user_ids=int(_number(env, "LOAD_USER_IDS", "1000")),
            order_ids=int(_number(env, "LOAD_ORDER_IDS", "5000")),
            websocket=env.get("LOAD_WEBSOCKET", "auto"),
            serve=env.get("LOAD_SERVE") or None,
            stress=parse_stress(env.get("LOAD_STRESS", "")),
        )


def parse_steps(text: str) -> tuple[Step, ...]:
    """'2:2,4:4,8:8' -> three steps of (users, spawn rate)."""
    steps = []
    for index, item in enumerate(part for part in text.split(",") if part.strip()):
        users, sep, rate = item.partition(":")
        try:
            steps.append(Step(int(users), float(rate) if sep else float(users)))
        except ValueError:
            raise ProfileError(f"steps[{index}]: expected USERS:SPAWN_RATE, got {item.strip()!r}") from None
    if not steps:
        raise ProfileError(f"LOAD_STEPS: expected USERS:SPAWN_RATE[,...], got {text!r}")
    return tuple(steps)


def parse_stress(text: str) -> StressPhase | None:
    """'32:4:2:6' -> 32 users for 4 s, then 2 users for 6 s; '' -> no stress phase."""
    if not text.strip():
        return None
    parts = text.split(":")
    try:
        users, seconds, recovery_users, recovery_seconds = parts
        return StressPhase(int(users), float(seconds), int(recovery_users), float(recovery_seconds))
    except ValueError:
        raise ProfileError(f"LOAD_STRESS: expected USERS:SECONDS:RECOVERY_USERS:RECOVERY_SECONDS, got {text!r}") from None


def _number(env: Mapping[str, str], name: str, default: str) -> float:
    raw = env.get(name, default)
    try:
        return float(raw)
    except ValueError:
        raise ProfileError(f"{name} must be a number, got {raw!r}") from None
