"""Airflow's plugin loader must not import cutover_kit's files as top-level modules."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_plugin_loader_sees_no_cutover_kit_file():
    from airflow._shared.module_loading.file_discovery import find_path_from_directory

    seen = [Path(path).relative_to(PLUGINS) for path in find_path_from_directory(str(PLUGINS), ".airflowignore", "glob")]
    assert [path for path in seen if path.suffix == ".py"] == []
    # The ignore file is what keeps them out: cutover_kit does hold .py files.
    assert any(PLUGINS.joinpath("cutover_kit").rglob("profile.py"))


def test_loading_plugins_leaves_the_standard_library_alone():
    from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory

    before = sys.modules.get("profile")
    plugins, errors = _load_plugins_from_plugin_directory(str(PLUGINS))
    assert (plugins, errors) == ([], {})
    assert sys.modules.get("profile") is before
    import cProfile  # imports the standard library's profile

    assert hasattr(cProfile, "Profile")
