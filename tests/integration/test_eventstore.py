"""The JetStream event store against a real nats-server: concurrency, atomicity, idempotency,
upcasting on read, snapshots, global order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS

from app.domain.order import (
    ORDER,
    CancelOrder,
    CreateOrder,
    MarkOrderPaid,
    Order,
    OrderCreated,
    OrderItem,
    OrderPaid,
    OrderShipped,
    OrderStatus,
    ShipOrder,
)
from app.eventstore.envelope import NEW, Metadata, NewEvent, Position, StreamId
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.eventstore.ports import AppendRequest, ConcurrencyError
from app.eventstore.snapshots import SnapshotStore
from app.service.repository import Repository, VersionMismatch

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
META = Metadata(correlation_id="test")


def created(order_id: int, amount: str = "10.00") -> OrderCreated:
    return OrderCreated(
        order_id=order_id,
        user_id=1,
        items=(OrderItem(product_id=1, quantity=1),),
        amount=Decimal(amount),
        currency="USD",
        at=T0,
        owner=str(1),
    )


def paid(order_id: int) -> OrderPaid:
    return OrderPaid(order_id=order_id, payment_id="p", amount=Decimal("10.00"), at=T0)


async def test_stream_creation_is_idempotent(nc: NATS, store: JetStreamEventStore) -> None:
    again = await JetStreamEventStore.open(nc, store.codec)
    info = await nc.jetstream().stream_info(STREAM)
    assert info.config.allow_direct
    assert info.config.duplicate_window == 120
    await again.close()


async def test_append_and_load(store: JetStreamEventStore) -> None:
    stream = StreamId("order", "1")
    result = await store.append(stream, [NewEvent(event=created(1))], NEW, META)
    assert result.position.version == 1
    loaded = await store.load(stream)
    assert [e.event for e in loaded.events] == [created(1)]
    assert loaded.position == result.position
    assert loaded.events[0].envelope.aggregate_version == 1
    assert (await store.load(StreamId("order", "404"))).events == []


async def test_concurrent_appends_exactly_one_wins(store: JetStreamEventStore) -> None:
    stream = StreamId("order", "2")
    base = await store.append(stream, [NewEvent(event=created(2))], NEW, META)

    async def attempt(i: int) -> str:
        try:
            await store.append(stream, [NewEvent(event=paid(2))], base.position, META)
        except ConcurrencyError:
            return "conflict"
        return "ok"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert outcomes.count("ok") == 1
    assert outcomes.count("conflict") == 19
    assert (await store.load(stream)).position.version == 2


async def test_atomic_batch_is_all_or_nothing(store: JetStreamEventStore) -> None:
    stream = StreamId("order", "3")
    ok = await store.append(
        stream,
        [NewEvent(event=created(3)), NewEvent(event=paid(3))],
        NEW,
        META,
    )
    assert ok.position.version == 2
    assert ok.first_sequence == ok.position.sequence - 1
    before = await store.last_sequence()
    # A stale expected position: the whole batch of three is rejected, none of it stored.
    batch = [NewEvent(event=OrderShipped(order_id=3, tracking_number=f"t{i}", at=T0)) for i in range(3)]
    with pytest.raises(ConcurrencyError):
        await store.append(stream, batch, Position(1, ok.first_sequence), META)
    assert await store.last_sequence() == before
    assert (await store.load(stream)).position.version == 2


async def test_retried_append_stores_no_duplicates_and_succeeds(store: JetStreamEventStore) -> None:
    stream = StreamId("order", "4")
    single = [NewEvent(event=created(4))]
    first = await store.append(stream, single, NEW, META)
    again = await store.append(stream, single, NEW, META)
    assert again.duplicate
    assert again.position == first.position
    batch = [NewEvent(event=paid(4)), NewEvent(event=ShipOrderEvent(4))]
    b1 = await store.append(stream, batch, first.position, META)
    # Someone else appends after us; our retry is still recognised as already stored.
    await store.append(
        stream, [NewEvent(event=OrderShipped(order_id=4, tracking_number="x", at=T0))], b1.position, META
    )
    b2 = await store.append(stream, batch, first.position, META)
    assert b2.duplicate
    assert b2.position == b1.position
    loaded = await store.load(stream)
    assert loaded.position.version == 4
    ids = [e.envelope.event_id for e in loaded.events]
    assert len(ids) == len(set(ids)) == 4


def ShipOrderEvent(order_id: int) -> OrderShipped:
    return OrderShipped(order_id=order_id, tracking_number="t", at=T0)


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


async def test_read_all_returns_global_order_from_any_sequence(store: JetStreamEventStore) -> None:
    start = await store.last_sequence() + 1
    expected = []
    for i in range(30):
        stream = StreamId("order", str(100 + i % 3))
        loaded = await store.load(stream)
        event = created(100 + i % 3) if loaded.position.version == 0 else paid(100 + i % 3)
        res = await store.append(stream, [NewEvent(event=event)], loaded.position, META)
        expected.append(res.position.sequence)
    got = await store.read_all(start, limit=10_000)
    assert [e.sequence for e in got] == expected
    middle = expected[17]
    assert [e.sequence for e in await store.read_all(middle, limit=5)] == expected[17:22]
    assert await store.read_all(expected[-1] + 1) == []


async def test_repository_execute_and_if_match(store: JetStreamEventStore) -> None:
    repo = Repository(store, ORDER)
    cmd = CreateOrder(order_id=6, user_id=1, items=(), amount=Decimal("99.99"), at=T0)
    done = await repo.execute(6, cmd, META)
    assert done.position.version == 1
    assert (await repo.execute(6, cmd, META)).events == []  # idempotent create
    with pytest.raises(VersionMismatch):
        await repo.execute(6, CancelOrder(order_id=6, reason="x", at=T0), META, expected_version=7)
    done = await repo.execute(6, CancelOrder(order_id=6, reason="x", at=T0), META, expected_version=1)
    assert isinstance(done.state, Order)
    assert done.state.status is OrderStatus.CANCELLED
    as_of = await repo.load_as_of(6, T0 - timedelta(seconds=1))
    assert as_of.position == NEW


async def test_snapshot_plus_tail_equals_full_replay(nc: NATS, store: JetStreamEventStore) -> None:
    snaps = await SnapshotStore.open(nc.jetstream())
    repo = Repository(store, ORDER, snaps, snapshot_every=2)
    await repo.execute(7, CreateOrder(order_id=7, user_id=1, items=(), amount=Decimal(1), at=T0), META)
    await repo.execute(7, MarkOrderPaid(order_id=7, payment_id="p", at=T0), META)  # v2: snapshot
    await repo.execute(7, ShipOrder(order_id=7, tracking_number="t", at=T0), META)  # v3: tail
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
    repo = Repository(store, ORDER, snaps, snapshot_every=every)
    order_id = int(datetime.now(UTC).timestamp() * 1e6) % 10**12
    await repo.execute(
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
            await repo.execute(order_id, cmd, META)
        except Exception as exc:  # domain errors are expected for some sequences
            assert type(exc).__module__.startswith("app.domain")
    with_snap, full = await repo.load(order_id), await repo.load(order_id, use_snapshot=False)
    assert (with_snap.state, with_snap.position) == (full.state, full.position)
    assert with_snap.from_snapshot == (full.position.version >= every)


async def test_multi_stream_atomic_append(store: JetStreamEventStore) -> None:
    a, b = StreamId("order", "201"), StreamId("order", "202")
    ra, rb = await store.append_multi(
        [
            AppendRequest(a, [NewEvent(event=created(201))], NEW),
            AppendRequest(b, [NewEvent(event=created(202))], NEW),
        ],
        META,
    )
    assert (ra.position.version, rb.position.version) == (1, 1)
    assert rb.first_sequence == ra.position.sequence + 1
    before = await store.last_sequence()
    # b's expectation is stale: neither stream gets anything.
    with pytest.raises(ConcurrencyError):
        await store.append_multi(
            [
                AppendRequest(a, [NewEvent(event=paid(201))], ra.position),
                AppendRequest(b, [NewEvent(event=paid(202))], NEW),
            ],
            META,
        )
    assert await store.last_sequence() == before


async def test_bulk_read_matches_direct_get(nc: NATS, store: JetStreamEventStore) -> None:
    """Large reads go through the lean bulk connection; they must return exactly what nats-py sees."""
    streams = [StreamId("order", str(300 + i)) for i in range(50)]
    positions = dict.fromkeys(streams, NEW)
    for round_ in range(50):  # 2,500 events, interleaved across 50 aggregates
        reqs = [
            AppendRequest(s, [NewEvent(event=created(300) if round_ == 0 else paid(300))], positions[s])
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
