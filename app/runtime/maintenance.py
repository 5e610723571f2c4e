"""One-shot maintenance runs behind ``eda rebuild``, ``eda snapshot`` and ``eda migrate``: connect from
settings, run the engine once with a rich progress display, close everything. The operator runs the same
engines. Each run is recorded in ``eda.maintenance_runs`` (source ``cli``, see ``app.readmodel.runs``) for
the console. A server that does not answer within ``EDA_CONNECT_TIMEOUT_S`` is an ``Unavailable`` with a
one-line message (a role waits for its servers forever; a command run by hand should not)."""

from __future__ import annotations

import asyncio

import asyncpg
import nats.errors
from nats.aio.client import Client as NATS
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from app.eventstore.connection import connect_nats
from app.eventstore.jetstream import open_event_store
from app.eventstore.snapshots import SnapshotStore
from app.readmodel import db, migrations, runs
from app.readmodel import rebuild as rb
from app.service.snapshotter import Progress as SnapshotProgress
from app.service.snapshotter import SnapshotRequest, SnapshotResult, Snapshotter
from app.settings import Settings
from app.telemetry.logs import mask_secrets


class Unavailable(ConnectionError):
    """NATS or PostgreSQL did not answer a one-shot command; the message is one line."""


def _reason(settings: Settings, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {settings.connect_timeout_s:g}s"
    return str(exc) or type(exc).__name__


async def _connect_nats(settings: Settings, name: str) -> NATS:
    try:
        return await asyncio.wait_for(connect_nats(settings, name=name), settings.connect_timeout_s)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        where = mask_secrets(settings.nats_url)
        raise Unavailable(f"cannot connect to NATS at {where}: {_reason(settings, exc)}") from exc


def _unreachable_db(settings: Settings, exc: BaseException) -> Unavailable:
    where = mask_secrets(settings.database_url.get_secret_value())
    return Unavailable(f"cannot connect to PostgreSQL at {where}: {_reason(settings, exc)}")


# Failures to open a session: unreachable, refused, unknown database, wrong login.
_DB_CONNECT_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.CannotConnectNowError,
)
# What goes away by itself: a server not listening yet (or restarting), one still starting up.
_DB_NOT_YET = (OSError, asyncpg.CannotConnectNowError)


async def _create_pool(settings: Settings, size: int) -> asyncpg.Pool:
    dsn = settings.database_url.get_secret_value()
    try:
        return await asyncio.wait_for(db.create_pool(dsn, size=size), settings.connect_timeout_s)
    except _DB_CONNECT_ERRORS as exc:
        raise _unreachable_db(settings, exc) from exc


async def _connect_db(settings: Settings, wait_s: float) -> asyncpg.Connection:
    """One connection, retried while PostgreSQL is unreachable or starting, for up to ``wait_s``."""
    dsn = settings.database_url.get_secret_value()
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_DB_NOT_YET),
        stop=stop_after_delay(wait_s),
        wait=wait_exponential(multiplier=0.25, max=5),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                conn: asyncpg.Connection = await asyncio.wait_for(
                    asyncpg.connect(dsn), min(settings.connect_timeout_s, wait_s)
                )
        return conn
    except _DB_CONNECT_ERRORS as exc:
        raise _unreachable_db(settings, exc) from exc


async def migrate(settings: Settings, *, wait_s: float | None = None) -> list[str]:
    """Apply the missing migrations; returns their names. PostgreSQL may still be starting: it is
    waited for ``wait_s`` (default ``EDA_CONNECT_TIMEOUT_S``; the chart's migrate Job waits longer)."""
    conn = await _connect_db(settings, settings.connect_timeout_s if wait_s is None else wait_s)
    try:
        return await migrations.migrate(conn, settings.readmodel_schema)
    finally:
        await conn.close()


async def rebuild(settings: Settings, request: rb.RebuildRequest, console: Console) -> rb.RebuildResult:
    """Rebuild a projection, printing progress (events replayed, percent, events/s, ETA)."""
    request = rb.RebuildRequest(
        projection=request.projection,
        live_schema=settings.readmodel_schema,
        from_sequence=request.from_sequence,
        to_sequence=request.to_sequence,
        batch_size=request.batch_size,
    ).validate()
    nc = await _connect_nats(settings, "eda-rebuild")
    store = await open_event_store(nc, settings)
    try:
        pool = await _create_pool(settings, 3)
    except Unavailable:
        await store.close()
        await nc.close()
        raise
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[events]} events · {task.fields[rate]} ev/s"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"rebuild {request.projection}", total=100, events=0, rate=0)

            def report(p: rb.Progress) -> None:
                bar.update(
                    task,
                    completed=p.percent,
                    description=f"{p.phase} {request.projection}",
                    events=p.events_replayed,
                    rate=int(p.events_per_second),
                )

            run_id = f"cli-rebuild-{request.rebuild_id}"
            await runs.record_start(pool, run_id, "rebuild", request.projection, runs.RunSource("cli"))
            recorder = runs.RunRecorder(pool, run_id)
            try:
                async with recorder.writing():
                    result = await rb.Rebuild(store, pool, request, recorder.rebuild_progress(report)).run()
            except BaseException as exc:
                await _finish_failed(pool, run_id, exc)
                raise
            await runs.record_finish(
                pool,
                run_id,
                "succeeded",
                progress=recorder.latest[1],
                message=f"rebuilt {result.orders} orders from {result.events_replayed} events "
                f"in {result.seconds:.1f}s",
            )
    finally:
        await pool.close()
        await store.close()
        await nc.close()
    console.print(
        f"rebuilt [bold]{request.projection}[/]: {result.orders} orders from {result.events_replayed} "
        f"events in {result.seconds:.1f}s (up to sequence {result.last_sequence})"
    )
    return result


async def _finish_failed(pool: asyncpg.Pool, run_id: str, exc: BaseException) -> None:
    """Record a run that ended with ``exc`` (interrupted → ``cancelled``, else ``failed``)."""
    cancelled = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
    message = "cancelled" if cancelled else f"{type(exc).__name__}: {exc}"[:1000]
    await asyncio.shield(
        runs.record_finish(pool, run_id, "cancelled" if cancelled else "failed", message=message)
    )


async def _recording_pool(settings: Settings, console: Console) -> asyncpg.Pool | None:
    """A small pool to record the run in ``eda.maintenance_runs``; ``None`` (with a warning) when
    PostgreSQL is unreachable — a snapshot needs only NATS."""
    try:
        return await _create_pool(settings, 2)
    except Unavailable as exc:
        console.print(f"[yellow]not recording this run ({exc})[/]")
        return None


async def snapshot(settings: Settings, request: SnapshotRequest, console: Console) -> SnapshotResult:
    """Snapshot aggregates once, printing the counts."""
    request.validate()
    nc = await _connect_nats(settings, "eda-snapshot")
    try:
        store = await open_event_store(nc, settings)
        snapshots = await SnapshotStore.open(nc.jetstream())
        pool = await _recording_pool(settings, console)
        run_id = runs.new_run_id("cli-snapshot")
        recorder = runs.RunRecorder(pool, run_id) if pool is not None else None
        try:
            with console.status(f"snapshotting {request.aggregate_type} aggregates"):
                if recorder is None:
                    result = await Snapshotter(nc, store, snapshots).run(request)
                else:
                    await runs.record_start(
                        recorder.pool, run_id, "snapshot", request.aggregate_type, runs.RunSource("cli")
                    )
                    try:
                        async with recorder.writing():
                            progress: SnapshotProgress = recorder.snapshot_progress()
                            result = await Snapshotter(nc, store, snapshots).run(request, progress)
                    except BaseException as exc:
                        await _finish_failed(recorder.pool, run_id, exc)
                        raise
                    await runs.record_finish(
                        recorder.pool,
                        run_id,
                        "succeeded",
                        progress=runs.snapshot_fields(result, result.scanned),
                        message=f"{result.written} snapshots written, {result.skipped} up to date",
                    )
        finally:
            if pool is not None:
                await pool.close()
        await store.close()
    finally:
        await nc.close()
    console.print(
        f"{result.scanned} aggregates scanned, {result.written} snapshots written, "
        f"{result.skipped} up to date"
        + (f", not found: {', '.join(result.missing)}" if result.missing else "")
    )
    return result
