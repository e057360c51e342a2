"""CLI: ``python -m sandbox.launcher up|down|status|env|stage-up|stage-down``."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from typing import Any

from sandbox.config import ConfigError
from sandbox.launcher.errors import SandboxError
from sandbox.launcher.lifecycle import Sandbox

DESCRIPTION = ("Start and stop the rehearsal sandbox: PostgreSQL, Redis, blue/green apps, HAProxy, Prometheus,\n"
               "and unleash-server when the flags live in Unleash (SANDBOX_FLAG_BACKEND=unleash).")



def env_lines(connections: dict[str, dict[str, Any]]) -> list[str]:
    """Shell lines exporting each connection as AIRFLOW_CONN_<ID> (Airflow's JSON format)."""
    return [f"export AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(conn, separators=(',', ':')))}"
            for conn_id, conn in connections.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.launcher", description=DESCRIPTION)
    parser.add_argument("command", choices=("up", "down", "status", "env", "stage-up", "stage-down"))
    parser.add_argument("--database", help="stage-up: the database copy the stage instances serve")
    parser.add_argument("--color", action="append", choices=("blue", "green"),
                        help="stage-up / stage-down: this color's stage instance (repeatable; default both)")
    args = parser.parse_args(argv)
    colors = tuple(args.color or ("blue", "green"))
    if args.command == "stage-up" and not args.database:
        parser.error("stage-up needs --database (the copy the stage made)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        sandbox = Sandbox()
        if args.command == "up":
            state = sandbox.up()
            print(json.dumps({"state_dir": state["state_dir"], "up_seconds": state.get("up_seconds"),
                              "ports": state["ports"]}, indent=2))
        elif args.command == "down":
            sandbox.down()
        elif args.command == "stage-up":
            print(json.dumps(sandbox.stage_up(args.database, colors)))
        elif args.command == "stage-down":
            print(json.dumps({"stopped": sandbox.stage_down(colors)}))
        elif args.command == "status":
            status = sandbox.status()
            print(json.dumps(status, indent=2))
            return 0 if all(status.values()) else 1
        else:
            print("\n".join(env_lines(sandbox.connections())))
    except (SandboxError, ConfigError) as error:
        print(f"sandbox: error: {error}", file=sys.stderr)
        return 1
    return 0
