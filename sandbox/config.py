"""Where the sandbox lives and which loopback ports it uses, read once from the environment."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cutover_kit.db.schema_versions import EXPAND_VERSION
from cutover_kit.flags.model import FLAG_BACKENDS
from cutover_kit.paths import REPO_ROOT

HOST = "127.0.0.1"
COLORS = ("blue", "green")
SCHEMAS = ("expanded", "legacy")
# SANDBOX_FLAG_BACKEND is one of FLAG_BACKENDS: "file" (a flagd-format JSON file the apps read
# in-process) or "unleash" (a server the launcher starts beside the sandbox).
# Green (the rewrite) reads and writes the expanded shape: below this version it is not ready.
GREEN_REQUIRED_SCHEMA = EXPAND_VERSION

# Component -> (environment variable, default port). Defaults sit above 15000 so they do not
# collide with system services (5432, 6379, 8080, 9090) that may run on a developer's machine.
PORT_SETTINGS: dict[str, tuple[str, int]] = {
    "postgres_port": ("SANDBOX_POSTGRES_PORT", 15432),
    "redis_port": ("SANDBOX_REDIS_PORT", 16379),
    "router_port": ("SANDBOX_ROUTER_PORT", 18080),
    "haproxy_exporter_port": ("SANDBOX_HAPROXY_EXPORTER_PORT", 18404),
    "prometheus_port": ("SANDBOX_PROMETHEUS_PORT", 19090),
    "blue_port": ("SANDBOX_BLUE_PORT", 18081),
    "green_port": ("SANDBOX_GREEN_PORT", 18082),
    "unleash_port": ("SANDBOX_UNLEASH_PORT", 14242),
    # The stage instances of stages 6 and 7 (sandbox/launcher/stage_instances.py).
    "blue_stage_port": ("SANDBOX_BLUE_STAGE_PORT", 18083),
    "green_stage_port": ("SANDBOX_GREEN_STAGE_PORT", 18084),
    # The webhook receiver (sandbox/webhook_receiver.py): notifications and Alertmanager's posts.
    "webhooks_port": ("SANDBOX_WEBHOOKS_PORT", 18099),
    "alertmanager_port": ("SANDBOX_ALERTMANAGER_PORT", 19093),
    # The local Sentry envelope receiver (sandbox/sentry_receiver.py).
    "sentry_port": ("SANDBOX_SENTRY_PORT", 18097),
}

# Linux limits sun_path to 108 bytes; a longer socket path fails deep inside HAProxy/PostgreSQL
# with an obscure message, so it is checked up front.
_MAX_UNIX_SOCKET_PATH = 107


class ConfigError(ValueError):
    """The environment asks for a sandbox layout that cannot work."""


@dataclass(frozen=True)
class SandboxConfig:
    state_dir: Path
    postgres_port: int = 15432
    redis_port: int = 16379
    router_port: int = 18080
    haproxy_exporter_port: int = 18404
    prometheus_port: int = 19090
    blue_port: int = 18081
    green_port: int = 18082
    unleash_port: int = 14242
    blue_stage_port: int = 18083
    green_stage_port: int = 18084
    webhooks_port: int = 18099
    alertmanager_port: int = 19093
    sentry_port: int = 18097
    repo_root: Path = REPO_ROOT
    host: str = HOST
    ready_timeout_seconds: float = 30.0
    # Size of the generated data set (SANDBOX_ORDERS; users = orders // 5, line items ~3 per order).
    seed_orders: int = 5000
    # Schema the database is left at after `up` (SANDBOX_SCHEMA): "expanded" applies the stage-2
    # expand migration and its backfill, so green (which needs that schema) is ready at once;
    # "legacy" leaves the Rails schema, for runs whose stage 2 performs the migration itself.
    schema: str = "expanded"
    flag_backend: str = "file"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxConfig:
        env = os.environ if env is None else env
        state_dir = Path(env.get("SANDBOX_DIR") or REPO_ROOT / ".sandbox").expanduser().resolve()
        ports = {field: _port_from_env(env, name, default) for field, (name, default) in PORT_SETTINGS.items()}
        timeout = _float_from_env(env, "SANDBOX_READY_TIMEOUT", 30.0)
        orders = _int_from_env(env, "SANDBOX_ORDERS", 5000)
        schema = env.get("SANDBOX_SCHEMA") or "expanded"
        flag_backend = env.get("SANDBOX_FLAG_BACKEND") or "file"
        config = cls(state_dir=state_dir, ready_timeout_seconds=timeout, seed_orders=orders, schema=schema,
                     flag_backend=flag_backend, **ports)
        config.validate()
        return config

    def validate(self) -> None:
        if self.schema not in SCHEMAS:
            raise ConfigError(f"SANDBOX_SCHEMA={self.schema!r}; expected one of {', '.join(SCHEMAS)}")
        if self.flag_backend not in FLAG_BACKENDS:
            raise ConfigError(f"SANDBOX_FLAG_BACKEND={self.flag_backend!r}; expected one of {', '.join(FLAG_BACKENDS)}")
        if not 0 <= self.seed_orders <= 50_000_000:
            raise ConfigError(f"SANDBOX_ORDERS must be in [0, 50000000], got {self.seed_orders}")
        ports = self.ports()
        clashes = {port for port in ports.values() if list(ports.values()).count(port) > 1}
        if clashes:
            names = sorted(name for name, port in ports.items() if port in clashes)
            raise ConfigError(f"sandbox ports must differ; {', '.join(names)} share {sorted(clashes)}")
        for path in (self.haproxy_socket, self.postgres_socket_dir / f".s.PGSQL.{self.postgres_port}"):
            if len(str(path)) > _MAX_UNIX_SOCKET_PATH:
                raise ConfigError(f"unix socket path too long ({len(str(path))} > 107 bytes): {path}; set a shorter SANDBOX_DIR")

    def ports(self) -> dict[str, int]:
        return {field: getattr(self, field) for field in PORT_SETTINGS}

    def app_port(self, color: str) -> int:
        if color not in COLORS:
            raise ValueError(f"unknown color {color!r}; expected one of {COLORS}")
        return self.blue_port if color == "blue" else self.green_port

    def stage_port(self, color: str) -> int:
        """Port of the color's stage instance (stages 6 and 7), beside the live one."""
        if color not in COLORS:
            raise ValueError(f"unknown color {color!r}; expected one of {COLORS}")
        return self.blue_stage_port if color == "blue" else self.green_stage_port

    def app_url(self, color: str) -> str:
        return f"http://{self.host}:{self.app_port(color)}"

    def app_dsn(self) -> str:
        """libpq DSN of the running sandbox's `cutover` database.

        The password is generated at every `up` and lives only in state.json, so this reads it
        there; raises if the sandbox is not up.
        """
        try:
            postgres = json.loads(self.state_file.read_text())["postgres"]
        except FileNotFoundError:
            raise ConfigError(f"sandbox is not up (no {self.state_file}); run `python -m sandbox.launcher up`") from None
        from psycopg2.extensions import make_dsn  # lazy: keep this module importable without psycopg2

        return make_dsn(host=postgres["host"], port=postgres["port"], dbname=postgres["dbname"],
                        user=postgres["user"], password=postgres["password"])

    @property
    def router_url(self) -> str:
        return f"http://{self.host}:{self.router_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def webhooks_url(self) -> str:
        return f"http://{self.host}:{self.webhooks_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.host}:{self.alertmanager_port}"

    @property
    def unleash_url(self) -> str:
        return f"http://{self.host}:{self.unleash_port}"

    @property
    def flags_file(self) -> Path:
        """The flagd-format flag file (file backend); written atomically, read by both apps."""
        return self.state_dir / "flags" / "flagd.json"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def haproxy_socket(self) -> Path:
        return self.run_dir / "haproxy.sock"

    @property
    def haproxy_cohort_map(self) -> Path:
        """User id -> cohort map HAProxy routes cohort members to green by (runtime API only)."""
        return self.state_dir / "haproxy" / "cohorts.map"

    @property
    def haproxy_routing_map(self) -> Path:
        """HAProxy's routing settings map ("user_routing on" routes identified users by user)."""
        return self.state_dir / "haproxy" / "routing.map"

    @property
    def postgres_dir(self) -> Path:
        return self.state_dir / "pg"

    @property
    def postgres_data_dir(self) -> Path:
        return self.postgres_dir / "data"

    @property
    def postgres_socket_dir(self) -> Path:
        return self.postgres_dir / "run"

    @property
    def postgres_log_dir(self) -> Path:
        return self.postgres_dir / "log"


def _port_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a port number") from None
    if not 1024 <= port <= 65535:
        raise ConfigError(f"{name}={port} is outside 1024-65535 (unprivileged ports only)")
    return port


def _float_from_env(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


def _int_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None


def scratch_config(prefix: str, port_offset: int, **settings: str) -> SandboxConfig:
    """A sandbox of its own for a test or a benchmark: a fresh state directory under /tmp and
    every port shifted by `port_offset`, so it never meets a developer's sandbox or another run's.
    `settings` are more SANDBOX_* variables by name (e.g. SANDBOX_SCHEMA="legacy")."""
    # /tmp, not pytest's tmp_path (mode 0700): PostgreSQL runs as another user and must enter it.
    state_dir = Path(tempfile.mkdtemp(prefix=prefix))
    state_dir.chmod(0o755)
    env = {"SANDBOX_DIR": str(state_dir), **settings}
    env.update({name: str(default + port_offset) for name, default in PORT_SETTINGS.values()})
    return SandboxConfig.from_env(env)
