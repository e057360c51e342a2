"""Configuration files rendered from include/ templates into the state dir, checked before use."""

from __future__ import annotations

import subprocess
from pathlib import Path
from string import Template
from typing import Any

from sandbox.config import SandboxConfig
from sandbox.launcher.errors import SandboxError


class ConfigFiles:
    config: SandboxConfig

    def _render(self, component: str, template: Path, name: str, values: dict[str, Any]) -> Path:
        try:
            text = Template(template.read_text()).substitute({key: str(value) for key, value in values.items()})
        except (KeyError, ValueError) as error:
            raise SandboxError(f"{component}: cannot render {template}: bad or unknown placeholder {error}") from None
        directory = self.config.state_dir / component
        directory.mkdir(exist_ok=True)
        target = directory / name
        target.write_text(text)
        return target

    def _check_config(self, component: str, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise SandboxError(f"{component}: configuration check `{' '.join(argv)}` failed:\n"
                               f"{(done.stdout + done.stderr).strip()}")
