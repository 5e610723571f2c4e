"""One-shot maintenance runs behind ``eda rebuild`` and ``eda snapshot``: connect from settings, run the
engine once with a rich progress display, close everything. The operator runs the same engines."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.connection import connect_nats
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.readmodel import db
from app.readmodel import rebuild as rb
from app.settings import Settings
from app.snapshotter import SnapshotRequest, SnapshotResult, Snapshotter


async def rebuild(settings: Settings, request: rb.RebuildRequest, console: Console) -> rb.RebuildResult:
    """Rebuild a projection, printing progress (events replayed, percent, events/s, ETA)."""
    request = rb.RebuildRequest(
        projection=request.projection,
        live_schema=settings.readmodel_schema,
        from_sequence=request.from_sequence,
        to_sequence=request.to_sequence,
        batch_size=request.batch_size,
    ).validate()
    nc = await connect_nats(settings, name="eda-rebuild")
    store = await JetStreamEventStore.open(
        nc, EventCodec(all_event_types()), replicas=settings.stream_replicas
    )
    pool = await db.create_pool(settings.database_url.get_secret_value(), size=3)
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

            result = await rb.Rebuild(store, pool, request, report).run()
    finally:
        await pool.close()
        await store.close()
        await nc.close()
    console.print(
        f"rebuilt [bold]{request.projection}[/]: {result.orders} orders from {result.events_replayed} "
        f"events in {result.seconds:.1f}s (up to sequence {result.last_sequence})"
    )
    return result


async def snapshot(settings: Settings, request: SnapshotRequest, console: Console) -> SnapshotResult:
    """Snapshot aggregates once, printing the counts."""
    request.validate()
    nc = await connect_nats(settings, name="eda-snapshot")
    try:
        store = await JetStreamEventStore.open(
            nc, EventCodec(all_event_types()), replicas=settings.stream_replicas
        )
        snapshots = await SnapshotStore.open(nc.jetstream(), replicas=settings.stream_replicas)
        with console.status(f"snapshotting {request.aggregate_type} aggregates"):
            result = await Snapshotter(nc, store, snapshots).run(request)
        await store.close()
    finally:
        await nc.close()
    console.print(
        f"{result.scanned} aggregates scanned, {result.written} snapshots written, "
        f"{result.skipped} up to date"
        + (f", not found: {', '.join(result.missing)}" if result.missing else "")
    )
    return result
