"""Checking a backup without restoring it (``eda restore --verify``, ``eda backup --verify``, and the
first step of every restore): the manifest is readable and consistent, and every chunk file has the
size and SHA-256 the manifest records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from app.backup.chunks import ChunkError, check_chunk
from app.backup.manifest import BackupFormatError, Manifest, read_manifest
from app.backup.plan import CUT, PLAN
from app.backup.progress import NullProgress, Progress


class BackupInvalid(ValueError):
    """The backup cannot be trusted: the message names the first problem found."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    manifest: Manifest
    chunks: int
    bytes: int


def _consistent(manifest: Manifest) -> None:
    cut = manifest.stream(CUT)
    if cut is None:
        raise BackupInvalid(f"the manifest has no {CUT} stream")
    if cut.last_sequence != manifest.cut_sequence:
        raise BackupInvalid(f"cut {manifest.cut_sequence} differs from {CUT}'s last sequence")
    known = {p.name for p in PLAN}
    for stream in manifest.streams:
        if stream.name not in known:
            raise BackupInvalid(f"the manifest lists stream {stream.name!r}, which this build does not own")
        if stream.messages and not stream.chunks:
            raise BackupInvalid(f"stream {stream.name} has {stream.messages} messages but no data")
    if manifest.postgres is None:
        raise BackupInvalid("the manifest has no PostgreSQL dump")


async def verify(directory: Path, progress: Progress | None = None) -> VerifyReport:
    """``BackupInvalid`` unless the backup in ``directory`` is complete and intact."""
    progress = progress or NullProgress()
    try:
        manifest = read_manifest(directory)
    except BackupFormatError as exc:
        raise BackupInvalid(str(exc)) from None
    _consistent(manifest)
    chunks = manifest.chunks()
    total = sum(c.bytes for c in chunks)
    progress.begin("checksums", total)
    for chunk in chunks:
        try:
            await asyncio.to_thread(check_chunk, directory, chunk)
        except ChunkError as exc:
            raise BackupInvalid(str(exc)) from None
        progress.advance(chunk.bytes)
    progress.end(f"{len(chunks)} chunks, {total:,} bytes: every SHA-256 matches")
    return VerifyReport(manifest, len(chunks), total)
