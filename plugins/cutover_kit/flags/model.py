"""The cutover's feature flags as one absolute state, and the rule the apps apply per request.

Which flags exist (names are public: dashboards, runbooks and the flag services refer to them):

- ``green.feature.<area>`` (one per feature area of the API: users, orders), boolean. Off means
  green does not serve that area with its own code: it forwards the request to blue (Rails).
  This is the first rollback lever: flipping these off moves feature traffic back to Rails
  without touching the router.
- ``green.rollout``, boolean with a percentage: on for a request that reached green through the
  router (the router already chose it for green at the step's weight), and, for a request that
  reached green directly (internal callers, batch jobs), on for a sticky share of user ids equal
  to ``rollout_percent``. The cutover keeps ``rollout_percent`` equal to the traffic step, so
  direct callers see the same share of green as routed users.
- ``experiment.order_summary``: an A/B experiment with variants ``control`` / ``treatment``,
  sticky by user id (the same user always gets the same variant), treatment share
  ``experiment_treatment_percent``.

A request is served by green's new code only when its area's feature flag is on and the rollout
flag is on for it (serves_new_code). Everything here is pure: no I/O, no Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

# Where the flags live: a flagd-format JSON file the apps read in-process, or an Unleash server.
# The plan's ``flag_backend``, the sandbox's SANDBOX_FLAG_BACKEND and the hooks all mean these.
FLAG_BACKENDS: tuple[str, ...] = ("file", "unleash")
FEATURES: tuple[str, ...] = ("users", "orders")
FEATURE_FLAG_PREFIX = "green.feature."
ROLLOUT_FLAG = "green.rollout"
EXPERIMENT_FLAG = "experiment.order_summary"
EXPERIMENT_VARIANTS: tuple[str, ...] = ("control", "treatment")
RAILS = "rails"
TYPESCRIPT = "typescript"


class FlagStoreError(RuntimeError):
    """The flag store cannot be read or written (unreachable service, malformed file, bad config)."""


class FlagsNotApplied(FlagStoreError):
    """A write was not confirmed by reading back; `differences` names every flag that differs."""

    def __init__(self, store: str, differences: list[str]) -> None:
        self.differences = differences
        super().__init__(f"{store}: flags differ after writing: " + "; ".join(differences))


def feature_flag(feature: str) -> str:
    if feature not in FEATURES:
        raise ValueError(f"unknown feature area {feature!r}; expected one of {', '.join(FEATURES)}")
    return FEATURE_FLAG_PREFIX + feature


def _check_percent(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"{name} must be an integer in [0, 100], got {value!r}")


@dataclass(frozen=True)
class FlagState:
    """Absolute state of every cutover flag; writing it twice is the same as writing it once."""

    features: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(FEATURES, False))
    rollout_percent: int = 0
    experiment_treatment_percent: int = 50

    def __post_init__(self) -> None:
        unknown = sorted(set(self.features) - set(FEATURES))
        missing = sorted(set(FEATURES) - set(self.features))
        if unknown or missing:
            raise ValueError(f"flag state must name exactly the features {', '.join(FEATURES)}"
                             f" (unknown: {unknown or 'none'}, missing: {missing or 'none'})")
        _check_percent("rollout_percent", self.rollout_percent)
        _check_percent("experiment_treatment_percent", self.experiment_treatment_percent)
        object.__setattr__(self, "features", {name: bool(self.features[name]) for name in FEATURES})

    @classmethod
    def rails(cls, experiment_treatment_percent: int = 50) -> FlagState:
        """The safe default: every feature served by Rails, whatever the router does."""
        return cls(dict.fromkeys(FEATURES, False), 0, experiment_treatment_percent)

    @classmethod
    def for_step(cls, percent: int, experiment_treatment_percent: int = 50) -> FlagState:
        """Flags for a traffic step: every feature on in green, direct callers at the step's share."""
        return cls(dict.fromkeys(FEATURES, True), percent, experiment_treatment_percent)

    @property
    def all_rails(self) -> bool:
        return not any(self.features.values())

    def as_flags(self) -> dict[str, object]:
        """Flag name -> value, the vocabulary of logs and differences."""
        flags: dict[str, object] = {feature_flag(name): on for name, on in self.features.items()}
        flags[ROLLOUT_FLAG] = self.rollout_percent
        flags[EXPERIMENT_FLAG] = self.experiment_treatment_percent
        return flags

    def differences(self, found: FlagState) -> list[str]:
        """One readable line per flag whose value in `found` is not the one wanted here."""
        wanted, seen = self.as_flags(), found.as_flags()
        return [f"{name}: want {_show(name, wanted[name])}, found {_show(name, seen[name])}"
                for name in wanted if wanted[name] != seen[name]]

    def describe(self) -> str:
        on = [name for name, value in self.features.items() if value]
        return (f"features on: {', '.join(on) or 'none (all Rails)'}; rollout {self.rollout_percent} %; "
                f"experiment treatment {self.experiment_treatment_percent} %")


def _show(name: str, value: object) -> str:
    if name == ROLLOUT_FLAG or name == EXPERIMENT_FLAG:
        return f"{value} %"
    return "on" if value else "off"


class FlagStore(Protocol):
    """Where the cutover's flags live (a flagd JSON file, an Unleash server...)."""

    name: str

    def read(self) -> FlagState:
        """The state as the store holds it now; FlagStoreError if unreachable or malformed."""
        ...

    def write(self, desired: FlagState) -> None:
        """Set every flag to `desired` (absolute, idempotent)."""
        ...


def apply_flags(store: FlagStore, desired: FlagState) -> FlagState:
    """Write `desired`, read it back, and refuse to report success while any flag differs."""
    store.write(desired)
    found = store.read()
    differences = desired.differences(found)
    if differences:
        raise FlagsNotApplied(store.name, differences)
    return found


# --------------------------------------------------------------------------- evaluation (apps)

def serves_new_code(feature_on: bool, rollout_on: bool) -> bool:
    """Green serves a request with its own code only if both its feature and the rollout allow it."""
    return feature_on and rollout_on


class FlagEvaluator(Protocol):
    """What an app asks per request; implementations wrap a flag provider (flagd, Unleash)."""

    def feature_on(self, feature: str, user_id: int | None, via_router: bool) -> bool:
        ...

    def rollout_on(self, user_id: int | None, via_router: bool) -> bool:
        ...

    def experiment_variant(self, user_id: int | None) -> str:
        ...
