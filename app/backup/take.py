"""Taking a backup (``eda backup``, the ``Backup`` custom resource): the parts of ``plan.PLAN`` in order,
each written as checksummed chunks, then the manifest (last: its presence marks a complete backup).

A part is a stream snapshot through JetStream's API (``snapshotapi``) or the PostgreSQL dump
(``postgres``). An optional mirror check records how far the disaster-recovery mirror is behind.
A failed backup removes what it wrote, so a directory is either a complete backup or nothing.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from nats.aio.client import Client as NATS

from app.backup import continuity, postgres, snapshotapi
from app.backup.chunks import DEFAULT_CHUNK_BYTES, ChunkWriter
from app.backup.manifest import (
    MANIFEST,
    ConsumerPosition,
    Manifest,
    MirrorCheck,
    PostgresBackup,
    StreamBackup,
    write_manifest,
)
from app.backup.plan import CUT, PLAN, Part
from app.backup.progress import NullProgress, Progress
from app.eventstore.counters import STREAM as COUNTERS
from app.telemetry import tracer

MirrorProbe = Callable[[], Awaitable[MirrorCheck]]


class BackupError(RuntimeError):
    """A backup could not be taken (target not empty, a required stream missing, ...)."""


@dataclass(frozen=True, slots=True)
class BackupRequest:
    target: Path
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    mirror: MirrorProbe | None = None


def _prepare(target: Path) -> bool:
    """Create ``target`` (True) or accept it empty (False); never write over a backup."""
    if target.exists():
        if (target / MANIFEST).exists():
            raise BackupError(f"{target} already holds a backup; choose a new directory")
        if any(target.iterdir()):
            raise BackupError(f"{target} is not empty")
        return False
    target.mkdir(parents=True)
    return True


def _discard(target: Path, created: bool) -> None:
    if created:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


async def _consumers(nc: NATS, stream: str) -> list[ConsumerPosition]:
    infos = await nc.jetstream().consumers_info(stream)
    return [
        ConsumerPosition(
            name=str(i.name),
            ack_floor=int(i.ack_floor.stream_seq if i.ack_floor else 0),
            delivered=int(i.delivered.stream_seq if i.delivered else 0),
            config=i.config.as_dict(),
        )
        for i in infos
    ]


async def snapshot_stream(
    nc: NATS, part: Part, request: BackupRequest, progress: Progress, *, consumers: bool = True
) -> StreamBackup | None:
    """Snapshot one stream of the plan into chunk files (with its durable consumers' states unless
    ``consumers`` is false); ``None`` if an optional stream is absent."""
    info = await snapshotapi.stream_info(nc, part.name)
    if info is None:
        if part.required:
            raise BackupError(f"stream {part.name} does not exist: nothing to back up")
        return None
    progress.begin(part.name, None)
    positions = await _consumers(nc, part.name) if consumers else []
    writer = ChunkWriter(request.target, f"streams/{part.name}", "s2", request.chunk_bytes)
    started, clock = datetime.now(UTC), time.monotonic()

    async def sink(data: bytes) -> None:
        await writer.write(data)
        progress.advance(len(data))

    try:
        snap = await snapshotapi.snapshot(nc, part.name, sink, consumers=consumers)
    except BaseException:
        writer.abandon()
        raise
    chunks = await writer.close()
    backup = StreamBackup(
        part.name, snap.config, snap.state, chunks, started, time.monotonic() - clock, positions
    )
    span = f"{backup.first_sequence}..{backup.last_sequence}" if backup.messages else "empty"
    progress.end(f"{backup.messages:,} messages ({span}), {backup.stored_bytes:,} bytes")
    return backup


async def _postgres(conn: asyncpg.Connection, request: BackupRequest, progress: Progress) -> PostgresBackup:
    progress.begin("postgres eda", None)
    dumped = await postgres.dump(conn, request.target, request.chunk_bytes)
    rows = ", ".join(f"{t.name} {t.rows:,}" for t in dumped.tables)
    progress.end(f"rows: {rows or 'no tables'}")
    return dumped


async def take_backup(
    nc: NATS, conn: asyncpg.Connection, request: BackupRequest, progress: Progress | None = None
) -> Manifest:
    """Back up every part of the plan into ``request.target``; returns the manifest written there."""
    progress = progress or NullProgress()
    created = _prepare(request.target)
    # One span per backup, one child per part: the operator's reconcile span is their parent.
    with tracer().start_as_current_span("backup", attributes={"eda.backup.target": str(request.target)}):
        try:
            return await _take(nc, conn, request, progress)
        except BaseException:
            with contextlib.suppress(OSError):
                _discard(request.target, created)
            raise


async def _take(nc: NATS, conn: asyncpg.Connection, request: BackupRequest, progress: Progress) -> Manifest:
    started = datetime.now(UTC)
    streams: list[StreamBackup] = []
    absent: list[str] = []
    dumped: PostgresBackup | None = None
    counter = 0
    for part in PLAN:
        with tracer().start_as_current_span(f"backup {part.name}"):
            if part.kind == "postgres":
                dumped = await _postgres(conn, request, progress)
                continue
            if part.name == COUNTERS:
                counter = await continuity.counter_value(nc) if await _exists(nc, part.name) else 0
            backup = await snapshot_stream(nc, part, request, progress)
        if backup is None:
            absent.append(part.name)
        else:
            streams.append(backup)
    mirror = await request.mirror() if request.mirror is not None else None
    cut = next(s for s in streams if s.name == CUT)
    manifest = Manifest(
        created_at=started,
        finished_at=datetime.now(UTC),
        cut_sequence=cut.last_sequence,
        cut_time=cut.state.get("last_ts"),
        streams=streams,
        postgres=dumped,
        absent_streams=absent,
        order_id_counter=counter,
        nats_server_version=str(nc.connected_server_version),
        mirror=mirror,
    )
    write_manifest(request.target, manifest)
    return manifest


async def _exists(nc: NATS, stream: str) -> bool:
    return await snapshotapi.stream_info(nc, stream) is not None
