"""UnleashEvaluator: the apps' per-request flag answers from an Unleash server (unleash backend).

Wraps the official UnleashClient SDK: it polls ``/api/client/features`` every second with the
client token and evaluates locally (the yggdrasil engine), so a request never waits for the
network. Metrics and registration are off (nothing here reads them). Each evaluator keeps its
SDK cache in a private directory of its own (under ``SANDBOX_UNLEASH_CACHE_DIR``, which the
launcher points into the sandbox's state dir, or the OS temp dir), removed
by close(), so a restarted app never starts from another process's stale flags.

Context per request: ``userId`` (sticky rollout and experiment) and the custom property
``viaRouter`` ("true"/"false"), which the ``green.rollout`` flag's "via router" strategy matches
(see plugins/cutover_kit/flags/unleash_store.py for the layout in Unleash). Until the first fetch
succeeds, or for a flag the server does not know, every answer is the safe default: features
and rollout off (Rails), experiment ``control``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from UnleashClient import UnleashClient
from UnleashClient.utils import InstanceAllowType

try:
    from cutover_kit.flags.model import EXPERIMENT_FLAG, EXPERIMENT_VARIANTS, ROLLOUT_FLAG, feature_flag
except ModuleNotFoundError:  # the apps run with only the repository root on PYTHONPATH
    sys.path.append(str(Path(__file__).resolve().parent.parent / "plugins"))
    from cutover_kit.flags.model import EXPERIMENT_FLAG, EXPERIMENT_VARIANTS, ROLLOUT_FLAG, feature_flag

log = logging.getLogger(__name__)

URL_ENV = "SANDBOX_UNLEASH_URL"
TOKEN_ENV = "SANDBOX_UNLEASH_CLIENT_TOKEN"
VIA_ROUTER_PROPERTY = "viaRouter"  # same name as the context field the flag store creates
SAFE_VARIANT = EXPERIMENT_VARIANTS[0]  # "control"
_instances = count(1)


class UnleashEvaluator:
    """FlagEvaluator (cutover_kit.flags.model) backed by the UnleashClient SDK."""

    def __init__(self, url: str, client_token: str, app_name: str = "cutover-sandbox",
                 refresh_interval_seconds: int = 1, request_timeout_seconds: int = 2,
                 cache_root: str | os.PathLike[str] | None = None) -> None:
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Unleash URL {url!r} is not an http(s)://host[:port] address")
        if not client_token or ":" not in client_token:
            raise ValueError("Unleash client token missing or malformed (expected <project>:<environment>.<secret>)")
        self.url = url.rstrip("/")
        root = Path(cache_root) if cache_root else Path(tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True)
        self._cache_dir = Path(tempfile.mkdtemp(prefix=f"unleash-sdk-{os.getpid()}-", dir=root))
        # The SDK (and the APScheduler it polls with) logs every poll at INFO: lines a second per app.
        for noisy in ("UnleashClient", "apscheduler"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._closed = threading.Event()
        self.client = UnleashClient(
            url=f"{self.url}/api",
            app_name=app_name,
            # Unique per evaluator: the SDK warns about (and keys its registry on) repeated ids.
            instance_id=f"{app_name}-{os.getpid()}-{next(_instances)}",
            refresh_interval=refresh_interval_seconds,
            request_timeout=request_timeout_seconds,
            request_retries=0,  # the next poll (1 s later) is the retry
            disable_metrics=True,
            disable_registration=True,
            custom_headers={"Authorization": client_token},
            cache_directory=str(self._cache_dir),
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        )
        # Fetches once before returning (never raises: an unreachable server is logged by the SDK).
        self.client.initialize_client()
        known = self.client.feature_definitions()
        if known:
            log.info("unleash evaluator: %d flags from %s, refreshed every %d s", len(known), self.url,
                     refresh_interval_seconds)
        else:
            log.warning("unleash evaluator: no flags from %s yet (unreachable, bad token, or none defined); "
                        "every request is served by Rails until it answers", self.url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, app_name: str = "cutover-sandbox") -> UnleashEvaluator:
        """From SANDBOX_UNLEASH_URL and SANDBOX_UNLEASH_CLIENT_TOKEN (set by the sandbox launcher);
        the SDK cache goes under SANDBOX_UNLEASH_CACHE_DIR (the launcher points it into the state
        dir), else SANDBOX_DIR, else the OS temp dir."""
        env = os.environ if env is None else env
        missing = [name for name in (URL_ENV, TOKEN_ENV) if not env.get(name)]
        if missing:
            raise ValueError(f"flag backend unleash needs {' and '.join(missing)} in the environment "
                             f"(the sandbox launcher sets them when SANDBOX_FLAG_BACKEND=unleash)")
        cache_root: Path | None = None
        if env.get("SANDBOX_UNLEASH_CACHE_DIR"):
            cache_root = Path(env["SANDBOX_UNLEASH_CACHE_DIR"])
        elif env.get("SANDBOX_DIR"):
            cache_root = Path(env["SANDBOX_DIR"]) / "unleash" / "sdk-cache"
        return cls(env[URL_ENV], env[TOKEN_ENV], app_name=app_name, cache_root=cache_root)

    # ----------------------------------------------------------------------------- FlagEvaluator

    def feature_on(self, feature: str, user_id: int | None, via_router: bool) -> bool:
        return bool(self.client.is_enabled(feature_flag(feature), self._context(user_id, via_router)))

    def rollout_on(self, user_id: int | None, via_router: bool) -> bool:
        return bool(self.client.is_enabled(ROLLOUT_FLAG, self._context(user_id, via_router)))

    def experiment_variant(self, user_id: int | None) -> str:
        variant = self.client.get_variant(EXPERIMENT_FLAG, self._context(user_id, via_router=False))
        name = variant.get("name") if variant.get("enabled") else None
        return name if name in EXPERIMENT_VARIANTS else SAFE_VARIANT

    # ----------------------------------------------------------------------------- lifecycle

    def flag_names(self) -> set[str]:
        """Names of the flags the SDK currently holds (empty before the first successful fetch)."""
        return set(self.client.feature_definitions())

    def close(self) -> None:
        """Stop polling and remove this evaluator's cache directory (idempotent)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self.client.destroy()
        shutil.rmtree(self._cache_dir, ignore_errors=True)

    def __enter__(self) -> UnleashEvaluator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def _context(user_id: int | None, via_router: bool) -> dict[str, Any]:
        context: dict[str, Any] = {"properties": {VIA_ROUTER_PROPERTY: "true" if via_router else "false"}}
        if user_id is not None:
            context["userId"] = str(user_id)
        return context
