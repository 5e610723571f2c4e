"""The backup manifest (``manifest.json``): what a backup directory holds and how to check it.

Written last and atomically (temporary file, fsync, rename), so a directory with a manifest is a
complete backup and one without is an interrupted one. Every data file ("chunk") is listed with its size
and SHA-256; streams carry the configuration and state JetStream reported when their snapshot started
(first/last sequence, message count, bytes), the PostgreSQL tables their columns and row counts.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from app.backup.plan import CUT

FORMAT = "eda-backup/1"
MANIFEST = "manifest.json"


class BackupFormatError(ValueError):
    """Not a backup this build can read (missing or unreadable manifest, unknown format)."""


class Chunk(msgspec.Struct, frozen=True):
    file: str  # relative to the backup directory
    bytes: int
    sha256: str


class ConsumerPosition(msgspec.Struct, frozen=True):
    """A durable consumer of a stream just before its snapshot (informational; the snapshot itself
    holds the exact state). ``ack_floor`` is the last stream sequence acknowledged in order."""

    name: str
    ack_floor: int
    delivered: int
    config: dict[str, Any]


class StreamBackup(msgspec.Struct, frozen=True):
    name: str
    config: dict[str, Any]
    state: dict[str, Any]  # JetStream's state when the snapshot started: exactly what the archive holds
    chunks: list[Chunk]
    started_at: datetime
    seconds: float
    consumers: list[ConsumerPosition] = []

    @property
    def first_sequence(self) -> int:
        return int(self.state.get("first_seq", 0))

    @property
    def last_sequence(self) -> int:
        return int(self.state.get("last_seq", 0))

    @property
    def messages(self) -> int:
        return int(self.state.get("messages", 0))

    @property
    def stored_bytes(self) -> int:
        return sum(c.bytes for c in self.chunks)


class TableBackup(msgspec.Struct, frozen=True):
    name: str
    columns: list[str]
    rows: int
    chunks: list[Chunk]


class PostgresBackup(msgspec.Struct, frozen=True):
    schema: str
    server_version: str
    migrations: list[int]  # versions applied where the backup was taken
    tables: list[TableBackup]
    started_at: datetime
    seconds: float


class MirrorCheck(msgspec.Struct, frozen=True):
    """The mirror's state when the backup was taken (``eda backup --mirror-url``)."""

    stream: str
    source_last_sequence: int
    mirror_last_sequence: int
    lag_messages: int
    lag_seconds: float
    active_seconds_ago: float | None
    error: str | None = None


class Manifest(msgspec.Struct, frozen=True):
    created_at: datetime
    finished_at: datetime
    cut_sequence: int
    cut_time: str | None
    streams: list[StreamBackup]
    postgres: PostgresBackup | None
    absent_streams: list[str] = []  # optional streams that did not exist
    order_id_counter: int = 0
    nats_server_version: str = ""
    mirror: MirrorCheck | None = None
    format: str = FORMAT

    def stream(self, name: str) -> StreamBackup | None:
        return next((s for s in self.streams if s.name == name), None)

    def chunks(self) -> list[Chunk]:
        found = [c for s in self.streams for c in s.chunks]
        if self.postgres is not None:
            found += [c for t in self.postgres.tables for c in t.chunks]
        return found

    @property
    def events(self) -> int:
        """Messages of ``EVENTS`` in the backup (up to the cut)."""
        cut = self.stream(CUT)
        return cut.messages if cut is not None else 0

    @property
    def stored_bytes(self) -> int:
        return sum(c.bytes for c in self.chunks())


_ENCODER = msgspec.json.Encoder()


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically and durably (the backup is complete once this returns)."""
    path = directory / MANIFEST
    tmp = directory / f".{MANIFEST}.tmp"
    data = msgspec.json.format(_ENCODER.encode(manifest), indent=2)
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    fsync_dir(directory)
    return path


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BackupFormatError(f"{directory}: no {MANIFEST} (not a backup, or an interrupted one)") from None
    try:
        manifest = msgspec.json.decode(raw, type=Manifest)
    except msgspec.DecodeError as exc:
        raise BackupFormatError(f"{path}: unreadable manifest: {exc}") from None
    if manifest.format != FORMAT:
        raise BackupFormatError(f"{path}: format {manifest.format!r}, this build reads {FORMAT!r}")
    return manifest


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (new files, renames) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
