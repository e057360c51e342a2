"""Benchmarks (`make benchmark*`): each module is run as `python -m benchmarks.<name>` from the
project root. Importing the package puts the project and its plugins on the path once, before any
benchmark imports cutover_kit or sandbox (cutover_kit.paths.REPO_ROOT needs that path itself)."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for entry in (str(REPO_ROOT / "plugins"), str(REPO_ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)
