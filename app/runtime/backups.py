"""The command-line runs behind ``eda backup``, ``eda restore`` and ``eda mirror``: connect from
settings, run an engine with a rich progress display, print what was done, close everything."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from nats.aio.client import Client as NATS
from rich.console import Console

from app.backup import mirror as mirrors
from app.backup import retention
from app.backup.manifest import Manifest, MirrorCheck
from app.backup.progress import RichProgress
from app.backup.restore import MirrorSource, RestoreReport, RestoreRequest, restore
from app.backup.take import BackupRequest, take_backup
from app.backup.verify import VerifyReport, verify
from app.eventstore.connection import connect_nats
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class BackupOptions:
    target: Path
    keep: int | None = None
    verify: bool = True
    chunk_bytes: int = 8 * 1024 * 1024


@contextlib.asynccontextmanager
async def _nats(settings: Settings, name: str) -> AsyncIterator[NATS]:
    nc = await connect_nats(settings, name=name)
    try:
        yield nc
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def _mirror(settings: Settings | None) -> AsyncIterator[NATS | None]:
    """The mirror's connection when one is configured."""
    if settings is None or not settings.mirror_url:
        yield None
        return
    nc = await mirrors.connect_mirror(settings, settings.mirror_url, settings.mirror_creds)
    try:
        yield nc
    finally:
        await nc.close()


def describe_mirror(check: MirrorCheck) -> str:
    state = (
        "in sync"
        if check.lag_messages == 0
        else f"{check.lag_messages:,} events / {check.lag_seconds:.1f}s behind"
    )
    return f"mirror {check.stream} at sequence {check.mirror_last_sequence:,}: {state}"


async def run_backup(settings: Settings, options: BackupOptions, console: Console) -> Manifest:
    """Take a backup (into a timestamped sub-directory and prune when ``keep`` is set)."""
    target = retention.new_backup_dir(options.target) if options.keep else options.target
    clock = time.monotonic()
    async with _nats(settings, "eda-backup") as nc, _mirror(settings) as mnc:
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            probe = None
            if mnc is not None:

                async def probe() -> MirrorCheck:
                    return await mirrors.lag(nc, mnc, settings.mirror_stream)

            request = BackupRequest(target, options.chunk_bytes, probe)
            console.print(f"backing up to [bold]{target}[/]")
            with RichProgress(console, "backing up") as progress:
                manifest = await take_backup(nc, conn, request, progress)
        finally:
            await conn.close()
    seconds = time.monotonic() - clock
    console.print(
        f"backup complete: cut at EVENTS sequence {manifest.cut_sequence:,} ({manifest.cut_time}), "
        f"{manifest.events:,} events, {manifest.stored_bytes:,} bytes in {seconds:.1f}s "
        f"({manifest.events / max(seconds, 1e-9):,.0f} events/s)"
    )
    if options.verify:
        await run_verify(target, console)
    if options.keep:
        kept = retention.prune(options.target, options.keep)
        console.print(f"kept {len(kept.kept)} backups in {options.target}; removed {kept.removed or 'none'}")
    if manifest.mirror is not None:
        console.print(describe_mirror(manifest.mirror))
        mirrors.check(manifest.mirror, settings.mirror_max_lag_s)
    return manifest


async def run_verify(source: Path, console: Console) -> VerifyReport:
    with RichProgress(console, "verifying") as progress:
        report = await verify(source, progress)
    m = report.manifest
    console.print(
        f"backup {source} is intact: {len(m.streams)} streams, cut at EVENTS sequence {m.cut_sequence:,} "
        f"({m.events:,} events), taken {m.created_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    return report


async def run_restore(
    settings: Settings,
    source: Path | None,
    console: Console,
    *,
    force: bool = False,
    replicas: int | None = None,
    from_mirror: bool = False,
    rebuild: bool = True,
    skip_ids: int = 0,
) -> RestoreReport:
    """Restore (from a backup, the mirror, or both), then rebuild the read model with the engine behind
    ``eda rebuild``."""
    if from_mirror and not settings.mirror_url:
        raise mirrors.MirrorError("--from-mirror needs the mirror's URL (--mirror-url or EDA_MIRROR_URL)")
    async with _nats(settings, "eda-restore") as nc, _mirror(settings if from_mirror else None) as mnc:
        mirror = MirrorSource(mnc, settings.mirror_stream) if mnc is not None else None
        request = RestoreRequest(
            source, settings.readmodel_schema, force, replicas or settings.stream_replicas, mirror, skip_ids
        )
        with RichProgress(console, "restoring") as progress:
            report = await restore(nc, settings.database_url.get_secret_value(), request, progress)
    _print_restore(report, console)
    if rebuild:
        from app.readmodel.rebuild import RebuildRequest
        from app.runtime.maintenance import rebuild as rebuild_run

        await rebuild_run(settings, RebuildRequest(), console)
    return report


def _print_restore(report: RestoreReport, console: Console) -> None:
    if report.replaced:
        console.print(f"replaced streams: {', '.join(report.replaced)}")
    for name, state in report.streams:
        console.print(
            f"restored {name}: {int(state.get('messages', 0)):,} messages, "
            f"sequences {state.get('first_seq')}..{state.get('last_seq')}"
        )
    if report.rows:
        console.print(
            "restored PostgreSQL eda: " + ", ".join(f"{t} {n:,} rows" for t, n in report.rows.items())
        )
    if report.reopened_keys:
        console.print(f"{report.reopened_keys} idempotency keys of orders after the cut set back to pending")
    if report.consumers:
        console.print(f"re-created consumers from the backup's positions: {', '.join(report.consumers)}")
    if report.counter is not None:
        c = report.counter
        console.print(f"order-id counter: {c.before} -> {c.after} (next order id {c.after + 1})")


async def run_mirror_create(
    settings: Settings, source_domain: str | None, replicas: int, console: Console
) -> None:
    async with _mirror(settings) as mnc:
        if mnc is None:
            raise mirrors.MirrorError("set the mirror's URL (--mirror-url or EDA_MIRROR_URL)")
        await mirrors.create_mirror(mnc, settings.mirror_stream, source_domain, replicas)
    console.print(f"mirror stream {settings.mirror_stream} of EVENTS created on {settings.mirror_url}")


async def run_mirror_status(settings: Settings, console: Console) -> MirrorCheck:
    async with _nats(settings, "eda-mirror-status") as nc, _mirror(settings) as mnc:
        if mnc is None:
            raise mirrors.MirrorError("set the mirror's URL (--mirror-url or EDA_MIRROR_URL)")
        check = await mirrors.lag(nc, mnc, settings.mirror_stream)
    console.print(describe_mirror(check) + f"; primary at {check.source_last_sequence:,}")
    mirrors.check(check, settings.mirror_max_lag_s)
    return check
