"""Local rehearsal sandbox: real PostgreSQL, Redis, HAProxy, Prometheus, a Rails blue and a TypeScript green.

Everything runs as plain processes on 127.0.0.1, started and stopped by PID (see
:mod:`sandbox.launcher`). Nothing here is imported by DAGs at parse time.
"""

import sys
from pathlib import Path

# The sandbox builds on cutover_kit (connections, schema versions, flag model), which Airflow loads
# from plugins/. `python -m sandbox.<module>` must work from any environment (a child process, a
# test's subprocess with only the project root on PYTHONPATH), so the package puts plugins/ on the
# path itself, once.
_PLUGINS = str(Path(__file__).resolve().parent.parent / "plugins")
if _PLUGINS not in sys.path:
    sys.path.append(_PLUGINS)
