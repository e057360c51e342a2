"""``python -m sandbox.launcher up|down|status|env``."""

import sys

from sandbox.launcher.cli import main

sys.exit(main())
