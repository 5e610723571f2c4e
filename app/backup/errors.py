"""The failures a backup command reports as one line and exit status 1 (anything else is a bug and
keeps its traceback)."""

from __future__ import annotations

from app.backup.chunks import ChunkError
from app.backup.manifest import BackupFormatError
from app.backup.mirror import MirrorError
from app.backup.postgres import PostgresRestoreError
from app.backup.restore import RestoreRefused
from app.backup.snapshotapi import SnapshotError
from app.backup.take import BackupError
from app.backup.verify import BackupInvalid

EXPECTED: tuple[type[Exception], ...] = (
    BackupError,
    BackupFormatError,
    BackupInvalid,
    ChunkError,
    MirrorError,
    PostgresRestoreError,
    RestoreRefused,
    SnapshotError,
    OSError,
    TimeoutError,
)
