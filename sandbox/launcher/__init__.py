"""Start and stop the rehearsal sandbox: PostgreSQL, Redis, blue/green apps, HAProxy, Prometheus,
and unleash-server when the flags live in Unleash (SANDBOX_FLAG_BACKEND=unleash).

Everything runs as plain processes on 127.0.0.1 with its files under one state directory
(``SANDBOX_DIR``, default ``<repo>/.sandbox``). ``state.json`` there records PIDs, ports, log
files and the database password (generated at every fresh ``up``, file mode 0600), so a later
process (``python -m sandbox.launcher down``) can stop exactly what was started.

CLI: ``python -m sandbox.launcher up|down|status|env`` (:mod:`sandbox.launcher.cli`). Layout:
:mod:`~sandbox.launcher.lifecycle` (start order, status, connections) on top of one module per
component (postgres, redis_server, unleash, apps, haproxy, prometheus), :mod:`~sandbox.launcher.state`
(state dir and state.json) and :mod:`~sandbox.launcher.processes` (spawn, terminate, leftovers).
"""

from sandbox.launcher.apps import write_rails_flags
from sandbox.launcher.cli import env_lines, main
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.haproxy import haproxy_server_states
from sandbox.launcher.lifecycle import Sandbox

__all__ = ["Sandbox", "SandboxError", "env_lines", "haproxy_server_states", "main", "write_rails_flags"]
