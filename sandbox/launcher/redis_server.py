"""Redis: one foreground redis-server without persistence."""

from __future__ import annotations

from typing import Any

import redis

from sandbox.config import SandboxConfig
from sandbox.launcher.processes import PROBE_TIMEOUT


class RedisServer:
    config: SandboxConfig
    _state: dict[str, Any] | None

    def _start_redis(self) -> None:
        cfg = self.config
        data_dir = cfg.state_dir / "redis"
        data_dir.mkdir(exist_ok=True)
        conf = data_dir / "redis.conf"
        conf.write_text("\n".join([
            f"bind {cfg.host}",
            f"port {cfg.redis_port}",
            "protected-mode yes",
            "daemonize no",  # foreground: the PID we record is redis itself
            'save ""',  # no RDB snapshots and no AOF: the sandbox needs no persistence
            "appendonly no",
            f"dir {data_dir}",
            'logfile ""',
            "maxmemory 64mb",
            # Keep the config path in the process title so down() can tell our redis from others.
            'proc-title-template "{title} {listen-addr} {config-file}"',
        ]) + "\n")
        pid = self._spawn("redis", ["redis-server", str(conf)])
        client = redis.Redis(host=cfg.host, port=cfg.redis_port, socket_timeout=PROBE_TIMEOUT)
        self._wait_ready("redis", client.ping, self._log_path("redis"), pid)
        client.close()
