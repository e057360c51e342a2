"""The project root, defined once: plugins/cutover_kit/paths.py -> two levels up."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
