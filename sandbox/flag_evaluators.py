"""Flag evaluation inside the sandbox apps: the OpenFeature SDK with the flagd provider reading the
flag file in-process (file backend), or Unleash (sandbox.flags_unleash, imported only when chosen).

``evaluator_from_env(env)`` picks the backend from SANDBOX_FLAG_BACKEND ("file" by default):

- "file": :class:`FlagdFileEvaluator` on SANDBOX_FLAGS_FILE, re-reading it every
  SANDBOX_FLAGS_POLL_MS (default 50 ms; the provider checks the file's mtime, a stat per poll);
- "unleash": ``sandbox.flags_unleash.UnleashEvaluator.from_env(env)``.

Evaluation never raises: when the provider cannot answer (file unreadable since start, flag
missing) OpenFeature returns the caller's default, and every default here is the Rails-safe one
(feature off, rollout off, experiment control). A file that turns malformed later leaves the last
good flags in force and puts the provider in ERROR, which /__flags reports.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cutover_kit.flags.model import (
    EXPERIMENT_FLAG, EXPERIMENT_VARIANTS, FEATURES, ROLLOUT_FLAG, FlagEvaluator, FlagStoreError, feature_flag,
)

DEFAULT_POLL_MS = 50
BACKENDS = ("file", "unleash")
_domains = itertools.count(1)


class FlagdFileEvaluator:
    """FlagEvaluator over a flagd JSON file, through the OpenFeature client API."""

    backend = "file"

    def __init__(self, path: str | os.PathLike[str], poll_ms: int = DEFAULT_POLL_MS) -> None:
        from openfeature import api
        from openfeature.contrib.provider.flagd import FlagdProvider
        from openfeature.contrib.provider.flagd.config import ResolverType

        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise FlagStoreError(f"flag file {self.path} does not exist (the sandbox launcher writes it at `up`)")
        if not 10 <= poll_ms <= 60_000:
            raise FlagStoreError(f"flag file poll interval must be in [10, 60000] ms, got {poll_ms}")
        # In-process file mode: deadline_ms is also the file watcher's poll interval.
        self._provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(self.path),
                                       deadline_ms=poll_ms)
        # A domain of its own: the OpenFeature API is process-global, and tests run several evaluators.
        self._domain = f"cutover-flags-{os.getpid()}-{next(_domains)}"
        try:
            api.set_provider_and_wait(self._provider, domain=self._domain)
        except Exception as error:  # noqa: BLE001 - the provider wraps parse errors in its own types
            self._provider.shutdown()  # its file watcher thread is already running; stop it
            raise FlagStoreError(f"flag file {self.path}: the flagd provider cannot load it: {error!r}") from error
        self._client = api.get_client(domain=self._domain)

    @staticmethod
    def _context(user_id: int | None, via_router: bool) -> Any:
        from openfeature.evaluation_context import EvaluationContext

        return EvaluationContext(targeting_key=None if user_id is None else str(user_id),
                                 attributes={"via_router": bool(via_router)})

    def feature_on(self, feature: str, user_id: int | None, via_router: bool) -> bool:
        return self._client.get_boolean_value(feature_flag(feature), False, self._context(user_id, via_router))

    def rollout_on(self, user_id: int | None, via_router: bool) -> bool:
        return self._client.get_boolean_value(ROLLOUT_FLAG, False, self._context(user_id, via_router))

    def experiment_variant(self, user_id: int | None) -> str:
        variant = self._client.get_string_value(EXPERIMENT_FLAG, EXPERIMENT_VARIANTS[0], self._context(user_id, False))
        return variant if variant in EXPERIMENT_VARIANTS else EXPERIMENT_VARIANTS[0]

    def loaded_state(self) -> dict[str, Any]:
        """The percentages the provider has loaded (from the flags' metadata) and its status."""
        rollout = self._client.get_boolean_details(ROLLOUT_FLAG, False, self._context(None, False))
        experiment = self._client.get_string_details(EXPERIMENT_FLAG, EXPERIMENT_VARIANTS[0], self._context(None, False))
        return {
            "source": str(self.path),
            "provider_status": self._client.get_provider_status().value,
            "rollout_percent": (rollout.flag_metadata or {}).get("rollout_percent"),
            "experiment_treatment_percent": (experiment.flag_metadata or {}).get("treatment_percent"),
            "error": rollout.error_message or experiment.error_message,
        }

    def close(self) -> None:
        self._provider.shutdown()


def evaluator_from_env(env: Mapping[str, str] | None = None) -> FlagEvaluator:
    """The app's evaluator for SANDBOX_FLAG_BACKEND; FlagStoreError naming the variable if unusable."""
    env = os.environ if env is None else env
    backend = env.get("SANDBOX_FLAG_BACKEND") or "file"
    if backend == "file":
        path = env.get("SANDBOX_FLAGS_FILE")
        if not path:
            raise FlagStoreError("SANDBOX_FLAGS_FILE is not set (path of the flagd flag file; the launcher sets it)")
        raw_poll = env.get("SANDBOX_FLAGS_POLL_MS") or str(DEFAULT_POLL_MS)
        try:
            poll_ms = int(raw_poll)
        except ValueError:
            raise FlagStoreError(f"SANDBOX_FLAGS_POLL_MS={raw_poll!r} is not an integer") from None
        return FlagdFileEvaluator(path, poll_ms)
    if backend == "unleash":
        from sandbox.flags_unleash import UnleashEvaluator  # only when chosen: its SDK is not needed otherwise

        return UnleashEvaluator.from_env(env)
    raise FlagStoreError(f"SANDBOX_FLAG_BACKEND={backend!r}; expected one of {', '.join(BACKENDS)}")


def evaluated_flags(evaluator: FlagEvaluator, backend: str) -> dict[str, Any]:
    """What an app reports on /__flags: each feature as evaluated now, and what the backend loaded.

    Features are evaluated for a direct request without a user: per-area switches carry no
    targeting, so this is their value for every request.
    """
    features = {feature: bool(evaluator.feature_on(feature, None, False)) for feature in FEATURES}
    report: dict[str, Any] = {"backend": backend, "evaluates_flags": True, "features": features,
                              "serves_rails": not any(features.values())}
    loaded = getattr(evaluator, "loaded_state", None)
    if callable(loaded):
        report.update(loaded())
    return report
