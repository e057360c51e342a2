"""What the backup, verification and restore functions raise (no Airflow)."""

from __future__ import annotations


class BackupError(RuntimeError):
    """A backup, verification or restore could not be done; the message says why."""


class BackupUnusable(BackupError):
    """The backup file itself is missing, truncated or altered: retrying cannot help."""
