"""Airflow imports every file of the plugins folder as a top-level module named after the file
(airflow/_shared/plugins_manager: ``sys.modules[path.stem] = module``), so a report module named
like a standard-library module would replace it for the whole process. A ``report/html.py`` did:
Great Expectations then failed with "module 'html' has no attribute '_replace_charref'"."""

from __future__ import annotations

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[4] / "plugins"


def test_no_report_module_shadows_the_standard_library():
    files = [*(PLUGINS / "cutover_kit" / "report").glob("*.py"), PLUGINS / "cutover_kit" / "runbooks.py",
             PLUGINS / "cutover_kit" / "stages" / "post_launch.py"]
    assert len(files) >= 9
    shadowing = [str(path.relative_to(PLUGINS)) for path in files if path.stem in sys.stdlib_module_names]
    assert shadowing == []
