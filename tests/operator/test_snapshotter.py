"""The snapshot engine against real NATS: all / ids / min-events selection, loads use the snapshots,
retention keeps the last K revisions per aggregate."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS
from seeding import seed_orders

from app.domain.order import ORDER
from app.eventstore.envelope import StreamId
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.service.repository import Repository
from app.service.snapshotter import InvalidSnapshotRequest, SnapshotRequest, Snapshotter, subject_counts


async def test_subject_counts_pages(nc: NATS, store: JetStreamEventStore) -> None:
    await seed_orders(store, 1, 300)
    counts = await subject_counts(nc, "events.order.*")
    assert len(counts) == 300
    assert counts["events.order.5"] == 3
    assert counts["events.order.6"] == 4


async def test_snapshot_all_ids_and_min_events(
    nc: NATS, store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    await seed_orders(store, 1, 50)
    engine = Snapshotter(nc, store, snapshots)
    repo = Repository(store, ORDER, snapshots)
    assert not (await repo.load(3)).from_snapshot

    some = await engine.run(SnapshotRequest("order", ids=("3", "4", "404")))
    assert (some.written, some.missing) == (2, ["404"])
    loaded = await repo.load(3)
    assert loaded.from_snapshot
    assert loaded.state == (await repo.load(3, use_snapshot=False)).state

    every = await engine.run(SnapshotRequest("order"))
    assert (every.scanned, every.written, every.skipped) == (50, 48, 2)  # 3 and 4 are up to date

    again = await engine.run(SnapshotRequest("order", min_events=1))
    assert (again.written, again.skipped) == (0, 50)


async def test_min_events_since_snapshot(
    nc: NATS, store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    await seed_orders(store, 1, 10)  # orders 5 and 10 have 3 events, the others 4
    result = await Snapshotter(nc, store, snapshots).run(SnapshotRequest("order", min_events=4))
    assert (result.written, result.skipped) == (8, 2)


async def test_retention_keeps_the_last_k(
    nc: NATS, store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    await seed_orders(store, 1, 2)
    repo = Repository(store, ORDER, snapshots)
    for _ in range(5):
        await repo.snapshot(1)
    assert await snapshots.revisions(StreamId("order", "1")) == 5
    result = await Snapshotter(nc, store, snapshots).run(SnapshotRequest("order", retain=2))
    assert (result.written, result.skipped, result.pruned_keys) == (1, 1, 2)  # order 2 new, order 1 pruned
    assert await snapshots.revisions(StreamId("order", "1")) == 2
    assert await snapshots.revisions(StreamId("order", "2")) == 1
    assert await snapshots.revisions(StreamId("order", "3")) == 0  # never snapshotted
    assert (await repo.load(1)).from_snapshot


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (SnapshotRequest("nope"), "unknown aggregate type"),
        (SnapshotRequest("order", ids=("a b",)), "invalid stream id"),
        (SnapshotRequest("order", min_events=0), "minEventsSinceSnapshot"),
        (SnapshotRequest("order", retain=0), "retain"),
    ],
)
def test_invalid_requests(request_: SnapshotRequest, message: str) -> None:
    with pytest.raises(InvalidSnapshotRequest, match=message):
        request_.validate()
