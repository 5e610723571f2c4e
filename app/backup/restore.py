"""Restoring a backup (``eda restore``): verify everything, check the target, replace the streams, load
PostgreSQL, re-open lost idempotency keys, raise the order-id counter. The CLI then rebuilds the read
model with the rebuild engine behind ``eda rebuild``.

Nothing half-restored: every chunk's SHA-256 is checked BEFORE anything is changed; the target is
checked next (a non-empty stream or table is replaced only with ``force``; a stream a running role is
consuming is never touched); a stream the server rejects, or a failed PostgreSQL load (one transaction),
deletes every stream this run created, so the target is left without them rather than with a mix.

From the mirror (``mirror``): ``EVENTS`` comes from the disaster-recovery mirror (snapshotted to a local
work directory first, so it is checked like a backup); with a backup as well, PostgreSQL, the aggregate
snapshots, dead letters and the counter come from it and ``EVENTS``' durable consumers are re-created
from the positions it recorded (the saga re-reacts from there). Its saga commands and timers are left
out: they are older than the log, and the re-reactions send and arm what running sagas need.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DeliverPolicy

from app.backup import continuity, postgres, snapshotapi
from app.backup.chunks import read_chunks
from app.backup.manifest import Manifest, StreamBackup
from app.backup.plan import CUT, stream_parts
from app.backup.progress import NullProgress, Progress
from app.backup.take import BackupRequest, snapshot_stream
from app.backup.verify import verify
from app.eventstore.jetstream import events_stream_config
from app.readmodel.migrations import migrate_dsn
from app.saga.timeouts import TIMERS_STREAM
from app.workers.commands import COMMANDS_STREAM

OLDER_THAN_MIRROR = frozenset({COMMANDS_STREAM, TIMERS_STREAM})


class RestoreRefused(RuntimeError):
    """The target is not in a state to restore into (listed problems); nothing was changed."""


@dataclass(frozen=True, slots=True)
class MirrorSource:
    nc: NATS
    stream: str
    work_dir: Path | None = None


@dataclass(frozen=True, slots=True)
class RestoreRequest:
    source: Path | None
    readmodel_schema: str = "readmodel"
    force: bool = False
    replicas: int = 1
    mirror: MirrorSource | None = None
    skip_ids: int = 0  # order ids left unused above the highest restored one (handed out after the cut)


@dataclass(slots=True)
class RestoreReport:
    streams: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # name, restored state
    replaced: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    reopened_keys: int = 0
    consumers: list[str] = field(default_factory=list)
    counter: continuity.CounterResult | None = None
    cut_sequence: int = 0


def restore_config(config: dict[str, Any], replicas: int) -> dict[str, Any]:
    """The stream's config for this target: its replica count, no placement, no server metadata."""
    out = dict(config)
    out["num_replicas"] = replicas
    out.pop("placement", None)
    metadata = {k: v for k, v in (out.get("metadata") or {}).items() if not k.startswith("_nats.")}
    out["metadata"] = metadata or None
    return {k: v for k, v in out.items() if v is not None}


async def _from_mirror(mirror: MirrorSource, work: Path, replicas: int, progress: Progress) -> StreamBackup:
    """Snapshot the mirror into ``work`` (checksummed like a backup) and present it as ``EVENTS``."""
    part = next(p for p in stream_parts() if p.name == CUT)
    mirrored = await snapshot_stream(
        mirror.nc, replace(part, name=mirror.stream), BackupRequest(work), progress, consumers=False
    )
    if mirrored is None:
        raise RestoreRefused(f"the mirror side has no stream {mirror.stream!r}")
    config = events_stream_config(replicas).as_dict()
    return msgspec.structs.replace(mirrored, name=CUT, config=config, consumers=[])


async def _sources(
    request: RestoreRequest, work: Path, progress: Progress
) -> tuple[Manifest | None, list[tuple[Path, StreamBackup]]]:
    manifest = (await verify(request.source, progress)).manifest if request.source is not None else None
    items: list[tuple[Path, StreamBackup]] = []
    if manifest is not None and request.source is not None:
        skip = {CUT, *OLDER_THAN_MIRROR} if request.mirror is not None else set()
        items = [(request.source, s) for s in manifest.streams if s.name not in skip]
    if request.mirror is not None:
        events = await _from_mirror(request.mirror, work, request.replicas, progress)
        items.insert(0, (work, events))
    else:
        items.sort(key=lambda item: item[1].name != CUT)  # the log first
    return manifest, items


async def _preflight(nc: NATS, conn: asyncpg.Connection, manifest: Manifest | None, force: bool) -> list[str]:
    """Problems that forbid the restore (empty: go), and the streams it will replace."""
    problems: list[str] = []
    for part in stream_parts():
        info = await snapshotapi.stream_info(nc, part.name)
        if info is None:
            continue
        messages = int(info["state"].get("messages", 0))
        if messages and not force:
            problems.append(f"stream {part.name} holds {messages:,} messages (use --force to replace it)")
        for consumer in await nc.jetstream().consumers_info(part.name):
            if consumer.num_waiting or consumer.push_bound:
                problems.append(
                    f"consumer {consumer.name} on {part.name} is in use: stop every eda role first "
                    "(a stopped role's pull requests expire within 30 s)"
                )
    if manifest is not None and manifest.postgres is not None:
        try:
            await postgres.check_compatible(conn, manifest.postgres)
        except postgres.PostgresRestoreError as exc:
            problems.append(str(exc))
        occupied = await postgres.occupied_tables(conn, manifest.postgres)
        if occupied and not force:
            problems.append(f"PostgreSQL tables {occupied} hold rows (use --force to replace them)")
    return problems


async def _clear(nc: NATS) -> list[str]:
    """Delete every stream of the plan that exists (all empty, or ``force`` was given)."""
    deleted = []
    js = nc.jetstream()
    for part in stream_parts():
        if await snapshotapi.stream_info(nc, part.name) is not None:
            await js.delete_stream(part.name)
            deleted.append(part.name)
    return deleted


async def _restore_stream(
    nc: NATS, root: Path, stream: StreamBackup, replicas: int, progress: Progress
) -> dict[str, Any]:
    progress.begin(stream.name, stream.stored_bytes)
    piece = snapshotapi.restore_piece_bytes(stream.stored_bytes, stream.messages)
    pieces = read_chunks(root, stream.chunks, piece)
    config = restore_config(stream.config, replicas)
    info = await snapshotapi.restore(nc, config, stream.state, pieces, sent=progress.advance)
    state: dict[str, Any] = info.get("state", {})
    _check_restored(stream, state)
    progress.end(f"{stream.messages:,} messages, sequences {stream.first_sequence}..{stream.last_sequence}")
    return state


def _check_restored(stream: StreamBackup, state: dict[str, Any]) -> None:
    """The server's state after a restore must match the backup's. A work-queue or interest stream may
    hold fewer messages: those its consumers acknowledged while the snapshot was written are dropped."""
    messages, last = int(state.get("messages", -1)), int(state.get("last_seq", -1))
    retained = stream.config.get("retention", "limits") != "limits"
    if last == stream.last_sequence and (
        messages == stream.messages or (retained and messages < stream.messages)
    ):
        return
    raise snapshotapi.SnapshotError(
        f"{stream.name}: restored {messages} messages up to {last}, "
        f"the backup has {stream.messages} up to {stream.last_sequence}"
    )


async def _recreate_consumers(nc: NATS, manifest: Manifest) -> list[str]:
    """After a restore from the mirror: ``EVENTS``' durable consumers from the backup's positions."""
    events = manifest.stream(CUT)
    created = []
    for position in events.consumers if events is not None else []:
        config = ConsumerConfig.from_response(dict(position.config))
        if not config.durable_name:
            continue
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = position.ack_floor + 1
        await nc.jetstream().add_consumer(CUT, config)
        created.append(position.name)
    return created


async def restore(
    nc: NATS, dsn: str, request: RestoreRequest, progress: Progress | None = None
) -> RestoreReport:
    """Restore into the servers behind ``nc`` and ``dsn``; see the module docstring."""
    progress = progress or NullProgress()
    work_parent = request.mirror.work_dir if request.mirror is not None else None
    with tempfile.TemporaryDirectory(prefix="eda-restore-", dir=work_parent) as tmp:
        manifest, items = await _sources(request, Path(tmp), progress)
        await migrate_dsn(dsn, request.readmodel_schema)
        conn = await asyncpg.connect(dsn)
        try:
            problems = await _preflight(nc, conn, manifest, request.force)
            if problems:
                raise RestoreRefused("; ".join(problems))
            run = _Run(nc, conn, request, progress, RestoreReport(replaced=await _clear(nc)))
            await run.apply(manifest, items)
        finally:
            await conn.close()
    return run.report


@dataclass(slots=True)
class _Run:
    """One restore after its checks: streams, consumers, PostgreSQL, then the counter."""

    nc: NATS
    conn: asyncpg.Connection
    request: RestoreRequest
    progress: Progress
    report: RestoreReport

    async def apply(self, manifest: Manifest | None, items: list[tuple[Path, StreamBackup]]) -> None:
        created: list[str] = []
        try:
            for root, stream in items:
                created.append(stream.name)
                state = await _restore_stream(self.nc, root, stream, self.request.replicas, self.progress)
                self.report.streams.append((stream.name, state))
            if manifest is not None and self.request.mirror is not None:
                self.report.consumers = await _recreate_consumers(self.nc, manifest)
            orders = await continuity.restored_order_ids(self.nc)
            async with self.conn.transaction():
                await self._postgres(manifest)
                self.report.reopened_keys = await postgres.reopen_lost_keys(self.conn, orders)
        except BaseException:
            await _rollback(self.nc, created)
            raise
        floor = max(max(orders, default=0), await postgres.highest_key_order_id(self.conn))
        floor += self.request.skip_ids
        self.report.counter = await continuity.raise_counter(self.nc, floor, replicas=self.request.replicas)
        cut = (int(state.get("last_seq", 0)) for name, state in self.report.streams if name == CUT)
        self.report.cut_sequence = next(cut, 0)

    async def _postgres(self, manifest: Manifest | None) -> None:
        if manifest is None or manifest.postgres is None or self.request.source is None:
            return
        self.progress.begin("postgres eda", None)
        self.report.rows = await postgres.load(self.conn, self.request.source, manifest.postgres)
        self.progress.end(", ".join(f"{t} {n:,} rows" for t, n in self.report.rows.items()))


async def _rollback(nc: NATS, created: list[str]) -> None:
    """Delete the streams this run created (best effort: the error that got us here is raised)."""
    js = nc.jetstream()
    for name in created:
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
