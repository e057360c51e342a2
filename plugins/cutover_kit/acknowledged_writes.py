"""The acknowledged-writes ledger: a file of order ids the clients were told were written.

One decimal id per line (blank lines allowed), as sandbox.traffic.AcknowledgedWritesFile and a
production ledger export write it. The `cutover` DAG takes its path as the param
``acknowledged_writes_file``; stage 1 checks it with :func:`load_acknowledged_writes` so a missing
or malformed ledger stops the run before anything moves, and the final integrity check reads it
with the same function (the file grows during the run, so it is read again then).

Pure Python on purpose: no Airflow import, no I/O at import time.
"""

from __future__ import annotations

import re
from pathlib import Path

_ORDER_ID = re.compile(r"[0-9]+")  # ASCII digits only: int() would also take "+5", "1_000", "٣"
_SHOWN_CHARS = 60


class AcknowledgedWritesError(ValueError):
    """The ledger file is missing, unreadable or has a line that is not an order id; the message
    names the file and, for a bad line, its number and text."""


def parse_acknowledged_writes(text: str, source: str) -> list[int]:
    """Sorted, distinct order ids from the ledger's text; `source` names the file in errors."""
    ids: set[int] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if not _ORDER_ID.fullmatch(stripped):
            shown = stripped if len(stripped) <= _SHOWN_CHARS else stripped[:_SHOWN_CHARS] + "..."
            raise AcknowledgedWritesError(
                f"acknowledged writes file {source}: line {number} is not an order id "
                f"(one integer per line): {shown!r}"
            )
        ids.add(int(stripped))
    return sorted(ids)


def load_acknowledged_writes(path: str | Path) -> list[int]:
    """Read and parse the ledger at `path`; AcknowledgedWritesError names what is wrong."""
    path = Path(path)
    if not path.exists():
        raise AcknowledgedWritesError(f"acknowledged writes file {path}: no such file")
    if not path.is_file():
        raise AcknowledgedWritesError(f"acknowledged writes file {path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise AcknowledgedWritesError(
            f"acknowledged writes file {path}: cannot read it: {error.strerror or error}"
        ) from error
    except UnicodeDecodeError as error:
        raise AcknowledgedWritesError(
            f"acknowledged writes file {path}: not UTF-8 text (byte {error.start})"
        ) from error
    return parse_acknowledged_writes(text, str(path))
