"""Where cutover_kit lives: the launcher uses its flag store and migrations, and the apps import it."""

from __future__ import annotations

import sys

from sandbox.config import REPO_ROOT

PLUGINS_DIR = REPO_ROOT / "plugins"


def plugins_on_path() -> None:
    if str(PLUGINS_DIR) not in sys.path:
        sys.path.append(str(PLUGINS_DIR))
