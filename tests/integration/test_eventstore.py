"""The JetStream event store against a real nats-server, beyond the port's contract (tests/contract):
its stream, upcasting of raw stored events, the bulk reader, snapshots with the command handler."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS

from app.domain.order import (
    ORDER,
    CancelOrder,
    CreateOrder,
    MarkOrderPaid,
    Order,
    ShipOrder,
)
from app.eventstore.envelope import NEW, NewEvent, StreamId
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.eventstore.ports import AppendRequest
from app.eventstore.snapshots import SnapshotStore
from app.service.handler import CommandHandler
from app.service.repository import Repository
from tests.support.orders import META, T0, order_created, order_paid


async def test_stream_creation_is_idempotent(nc: NATS, store: JetStreamEventStore) -> None:
    again = await JetStreamEventStore.open(nc, store.codec)
    info = await nc.jetstream().stream_info(STREAM)
    assert info.config.allow_direct
    assert info.config.duplicate_window == 120
    await again.close()


async def test_v1_event_appended_raw_loads_as_current(nc: NATS, store: JetStreamEventStore) -> None:
    v1 = {
        "event_id": "018f0000-0000-7000-8000-00000000abcd",
        "type": "OrderCreated",
        "schema_version": 1,
        "aggregate_type": "order",
        "aggregate_id": "5",
        "aggregate_version": 1,
        "occurred_at": "2024-05-01T12:00:00Z",
        "correlation_id": "legacy",
        "causation_id": None,
        "traceparent": None,
        "data": {"order_id": 5, "user_id": 9, "items": [], "amount": "10.00", "at": "2024-05-01T12:00:00Z"},
    }
    await nc.jetstream().publish("events.order.5", orjson.dumps(v1))
    repo = Repository(store, ORDER)
    loaded = await repo.load(5)
    assert isinstance(loaded.state, Order)
    assert loaded.state.currency == "USD"
    assert loaded.state.owner == "9"  # v2 -> v3: the customer it was placed for
    [event] = (await store.load(StreamId("order", "5"))).events
    assert event.envelope.schema_version == 3
    assert event.event.currency == "USD"


async def test_snapshot_plus_tail_equals_full_replay(nc: NATS, store: JetStreamEventStore) -> None:
    snaps = await SnapshotStore.open(nc.jetstream())
    orders = CommandHandler(store, ORDER, snapshots=snaps, snapshot_every=2)
    repo = orders.repository
    await orders.execute(7, CreateOrder(order_id=7, user_id=1, items=(), amount=Decimal(1), at=T0), META)
    await orders.execute(7, MarkOrderPaid(order_id=7, payment_id="p", at=T0), META)  # v2: snapshot
    await orders.execute(7, ShipOrder(order_id=7, tracking_number="t", at=T0), META)  # v3: tail
    with_snap = await repo.load(7)
    full = await repo.load(7, use_snapshot=False)
    assert with_snap.from_snapshot
    assert with_snap.state == full.state
    assert with_snap.position == full.position
    # A snapshot of another schema version is ignored, never misread.
    await snaps.put(StreamId("order", "7"), full.state, full.position, schema=99)
    stale = await repo.load(7)
    assert not stale.from_snapshot
    assert stale.state == full.state
    # A corrupt snapshot is ignored too.
    await snaps.kv.put("order.7", b"{not json")
    assert (await repo.load(7)).state == full.state


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    every=st.integers(1, 7),
    n_pay_retries=st.integers(0, 3),
    ops=st.lists(st.sampled_from(["pay", "ship", "cancel", "noop"]), max_size=10),
)
async def test_property_snapshot_load_equals_replay(
    nc: NATS, store: JetStreamEventStore, every: int, n_pay_retries: int, ops: list[str]
) -> None:
    snaps = await SnapshotStore.open(nc.jetstream())
    orders = CommandHandler(store, ORDER, snapshots=snaps, snapshot_every=every)
    repo = orders.repository
    order_id = int(datetime.now(UTC).timestamp() * 1e6) % 10**12
    await orders.execute(
        order_id, CreateOrder(order_id=order_id, user_id=2, items=(), amount=Decimal(5), at=T0), META
    )
    for i, op in enumerate(ops):
        cmd = {
            "pay": MarkOrderPaid(order_id=order_id, payment_id=f"p{i % (n_pay_retries + 1)}", at=T0),
            "ship": ShipOrder(order_id=order_id, tracking_number="t", at=T0),
            "cancel": CancelOrder(order_id=order_id, reason="r", at=T0),
            "noop": CreateOrder(order_id=order_id, user_id=2, items=(), amount=Decimal(5), at=T0),
        }[op]
        try:
            await orders.execute(order_id, cmd, META)
        except Exception as exc:  # domain errors are expected for some sequences
            assert type(exc).__module__.startswith("app.domain")
    with_snap, full = await repo.load(order_id), await repo.load(order_id, use_snapshot=False)
    assert (with_snap.state, with_snap.position) == (full.state, full.position)
    assert with_snap.from_snapshot == (full.position.version >= every)


async def test_bulk_read_matches_direct_get(nc: NATS, store: JetStreamEventStore) -> None:
    """Large reads go through the lean bulk connection; they must return exactly what nats-py sees."""
    streams = [StreamId("order", str(300 + i)) for i in range(50)]
    positions = dict.fromkeys(streams, NEW)
    for round_ in range(50):  # 2,500 events, interleaved across 50 aggregates
        reqs = [
            AppendRequest(
                s, [NewEvent(event=order_created(300) if round_ == 0 else order_paid(300))], positions[s]
            )
            for s in streams
        ]
        for req, res in zip(reqs, await store.append_multi(reqs, META), strict=True):
            positions[req.stream] = res.position
    await JetStreamEventStore.open(nc, store.codec)  # idempotent open keeps working next to a bulk reader
    last = await store.last_sequence()
    bulk = await store.read_raw(1, limit=10_000)  # >= threshold: bulk reader
    small = []
    seq = 1
    while seq <= last:
        part = await store.read_raw(seq, limit=500)  # below threshold: nats-py direct get
        if not part:
            break
        small.extend(part)
        seq = part[-1].sequence + 1
    assert [(m.sequence, m.subject, m.data) for m in bulk] == [(m.sequence, m.subject, m.data) for m in small]
    assert len(bulk) == last
    assert bulk[0].headers["Nats-Msg-Id"] == small[0].headers["Nats-Msg-Id"]
    filtered = await store.read_raw(1, limit=5000, subjects="events.order.301")
    assert filtered
    assert {m.subject for m in filtered} == {"events.order.301"}
