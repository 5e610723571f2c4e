"""Backups kept under one root directory (``eda backup --keep N``, a scheduled ``Backup`` object): one
sub-directory per backup named by its UTC start time, the newest ``keep`` complete ones kept."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.backup.manifest import MANIFEST

NAME_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class Kept:
    kept: list[str]
    removed: list[str]


def new_backup_dir(root: Path, now: datetime | None = None) -> Path:
    """``root/<UTC timestamp>`` (a suffix when a backup of the same second exists)."""
    base = (now or datetime.now(UTC)).astimezone(UTC).strftime(NAME_FORMAT)
    path, n = root / base, 1
    while path.exists():
        n += 1
        path = root / f"{base}-{n}"
    return path


def backups(root: Path) -> list[Path]:
    """Complete backups under ``root``, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())


def prune(root: Path, keep: int) -> Kept:
    """Keep the newest ``keep`` complete backups; remove older ones, and incomplete directories older
    than the newest complete backup (left by interrupted runs; a newer one may still be written)."""
    if keep < 1:
        raise ValueError("keep must be >= 1")
    complete = backups(root)
    doomed = complete[:-keep]
    if complete:
        newest = complete[-1].name
        doomed += [
            p
            for p in root.iterdir()
            if p.is_dir() and not (p / MANIFEST).is_file() and p.name < newest and not p.name.startswith(".")
        ]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return Kept([p.name for p in complete[-keep:]], sorted(p.name for p in doomed))
