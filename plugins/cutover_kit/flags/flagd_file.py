"""FlagdFileStore: the cutover's flags as a flagd flag-definition file (the embedded default backend).

The apps evaluate this file in-process with the OpenFeature flagd provider, which re-reads it
whenever its modification time grows. The file therefore is the whole state, and this module is
its only writer:

- ``render(state)`` turns a FlagState into the flagd document. Every flag is ENABLED; each
  default variant is the Rails-safe answer (features "off", rollout "off", experiment "control"),
  so a request the targeting cannot place (no user id) is served by Rails.
  ``green.rollout`` is "on" for requests that came through the router (context attribute
  ``via_router``) and, for direct requests, for a sticky ``rollout_percent`` share of user ids
  (flagd ``fractional`` on the targeting key, i.e. the user id). ``experiment.order_summary``
  splits users the same sticky way between ``treatment`` and ``control``.
- ``write(state)`` is atomic (temporary file in the same directory, fsync, os.replace, fsync of
  the directory) and idempotent: the same state always gives the same bytes.
- ``read()`` parses the file back into a FlagState and refuses, naming the file and the problem,
  anything this module would not have written (malformed JSON, a missing or extra flag, a
  hand-edited targeting rule): what the store reports must be exactly what the apps evaluate.

No Airflow, no OpenFeature import: the file format is plain JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cutover_kit.flags.model import (
    EXPERIMENT_FLAG, FEATURES, ROLLOUT_FLAG, FlagState, FlagStoreError, feature_flag,
)

FLAGD_SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"
GENERATOR = "cutover_kit.flags.flagd_file"
FORMAT_VERSION = 1
ON, OFF = "on", "off"
CONTROL, TREATMENT = "control", "treatment"
# The flagd file watcher reloads only when the mtime is strictly greater than the one it loaded,
# and Linux stamps files with a coarse clock (a few ms): two writes in one tick would look like
# one. Each write therefore moves the mtime at least this far past the previous file's.
MIN_MTIME_STEP_NS = 1_000_000

_NO_USER = {"!": {"var": "targetingKey"}}


def _boolean_flag(on: bool, description: str, targeting: dict[str, Any] | None = None,
                  metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {ON: True, OFF: False},
        "defaultVariant": ON if on else OFF,
        "metadata": {"description": description, **(metadata or {})},
    }
    if targeting is not None:
        flag["targeting"] = targeting
    return flag


def render(state: FlagState) -> dict[str, Any]:
    """The flagd document for `state` (a plain dict; see module doc for the rules)."""
    flags: dict[str, Any] = {}
    for feature in FEATURES:
        flags[feature_flag(feature)] = _boolean_flag(
            state.features[feature], f"green serves the {feature} area with its own code (off: forwarded to Rails)")
    percent = state.rollout_percent
    flags[ROLLOUT_FLAG] = _boolean_flag(
        False,
        "on for requests routed to green by the router; for direct requests, on for a sticky share of user ids",
        targeting={"if": [
            {"==": [{"var": "via_router"}, True]}, ON,
            _NO_USER, OFF,
            {"fractional": [[ON, percent], [OFF, 100 - percent]]},
        ]},
        metadata={"rollout_percent": percent},
    )
    treatment = state.experiment_treatment_percent
    flags[EXPERIMENT_FLAG] = {
        "state": "ENABLED",
        "variants": {CONTROL: CONTROL, TREATMENT: TREATMENT},
        "defaultVariant": CONTROL,
        "targeting": {"if": [_NO_USER, CONTROL, {"fractional": [[TREATMENT, treatment], [CONTROL, 100 - treatment]]}]},
        "metadata": {"description": "order summary A/B experiment, sticky by user id", "treatment_percent": treatment},
    }
    return {
        "$schema": FLAGD_SCHEMA_URL,
        "metadata": {"generator": GENERATOR, "format_version": FORMAT_VERSION},
        "flags": flags,
    }


def render_bytes(state: FlagState) -> bytes:
    """Canonical bytes: sorted keys and fixed indentation, so equal states give equal files."""
    return (json.dumps(render(state), indent=2, sort_keys=True) + "\n").encode()


def parse(document: Any, source: str = "flag document") -> FlagState:
    """The FlagState a flagd document written by :func:`render` holds; FlagStoreError otherwise."""
    def refuse(problem: str) -> FlagStoreError:
        return FlagStoreError(f"{source}: {problem}")

    if not isinstance(document, dict):
        raise refuse(f"expected a JSON object, got {type(document).__name__}")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("generator") != GENERATOR:
        raise refuse(f"not written by {GENERATOR} (metadata.generator is "
                     f"{metadata.get('generator') if isinstance(metadata, dict) else None!r}); refusing a foreign flag file")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise refuse(f"format_version {metadata.get('format_version')!r}, this code reads {FORMAT_VERSION}")
    flags = document.get("flags")
    if not isinstance(flags, dict):
        raise refuse("'flags' must be an object")
    expected_names = {feature_flag(feature) for feature in FEATURES} | {ROLLOUT_FLAG, EXPERIMENT_FLAG}
    missing, unknown = sorted(expected_names - set(flags)), sorted(set(flags) - expected_names)
    if missing or unknown:
        raise refuse(f"flags missing: {', '.join(missing) or 'none'}; unknown flags: {', '.join(unknown) or 'none'}")
    try:
        features = {}
        for feature in FEATURES:
            variant = flags[feature_flag(feature)]["defaultVariant"]
            if variant not in (ON, OFF):
                raise refuse(f"{feature_flag(feature)}: defaultVariant {variant!r} is neither {ON!r} nor {OFF!r}")
            features[feature] = variant == ON
        state = FlagState(
            features,
            flags[ROLLOUT_FLAG]["metadata"]["rollout_percent"],
            flags[EXPERIMENT_FLAG]["metadata"]["treatment_percent"],
        )
    except (KeyError, TypeError) as error:
        raise refuse(f"missing field {error}") from None
    except ValueError as error:
        raise refuse(str(error)) from None
    # Everything else (variants, targeting, states) must be exactly what render() writes, or the
    # apps would evaluate something other than what this store reports.
    canonical = render(state)
    differing = sorted(name for name in expected_names if flags[name] != canonical["flags"][name])
    if differing:
        raise refuse(f"flag(s) {', '.join(differing)} differ from what {GENERATOR} writes for "
                     f"{state.describe()} (hand-edited variants, targeting or state?)")
    return state


class FlagdFileStore:
    """FlagStore over one flagd JSON file (Connection ``flagd_default``, extra ``path``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = f"flagd file {self.path}"

    def read(self) -> FlagState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise FlagStoreError(f"{self.name}: no such file (the sandbox launcher writes it at `up`)") from None
        except OSError as error:
            raise FlagStoreError(f"{self.name}: cannot read: {error.strerror or error}") from None
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise FlagStoreError(f"{self.name}: not valid JSON: {error}") from None
        return parse(document, self.name)

    def write(self, desired: FlagState) -> None:
        data = render_bytes(desired)
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            previous_mtime_ns = self.path.stat().st_mtime_ns if self.path.exists() else None
            fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        except OSError as error:
            raise FlagStoreError(f"{self.name}: cannot write in {directory}: {error.strerror or error}") from None
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)  # mkstemp creates 0600; the apps may run as another user
            if previous_mtime_ns is not None:
                written_ns = os.stat(temporary).st_mtime_ns
                if written_ns < previous_mtime_ns + MIN_MTIME_STEP_NS:
                    bumped = previous_mtime_ns + MIN_MTIME_STEP_NS
                    os.utime(temporary, ns=(bumped, bumped))
            os.replace(temporary, self.path)
        except OSError as error:
            Path(temporary).unlink(missing_ok=True)
            raise FlagStoreError(f"{self.name}: write failed: {error.strerror or error}") from None
        # The rename itself is durable only once the directory entry is on disk.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
