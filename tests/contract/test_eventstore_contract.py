"""The ``EventStore`` contract: what every implementation promises (see ``app.eventstore.ports``),
checked on the in-memory twin and on JetStream alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from app.domain.order import OrderShipped
from app.eventstore.envelope import NEW, EventId, Metadata, NewEvent, Position, StreamId
from app.eventstore.ports import MAX_BATCH, AppendRequest, ConcurrencyError, EventStoreError
from tests.contract.conftest import Subject
from tests.support.orders import order_created, order_paid

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
META = Metadata(correlation_id="contract", causation_id="cause-1", traceparent=None)


def shipped(order_id: int, tracking: str = "t") -> OrderShipped:
    return OrderShipped(order_id=order_id, tracking_number=tracking, at=T0)


async def test_append_and_load(subject: Subject) -> None:
    store, stream = subject.store, StreamId("order", "1")
    result = await store.append(stream, [NewEvent(event=order_created(1))], NEW, META)
    assert result.position.version == 1
    assert not result.duplicate
    loaded = await store.load(stream)
    assert [e.event for e in loaded.events] == [order_created(1)]
    assert loaded.position == result.position
    [recorded] = loaded.events
    env = recorded.envelope
    assert (env.aggregate_type, env.aggregate_id, env.aggregate_version) == ("order", "1", 1)
    assert (env.correlation_id, env.causation_id, env.type) == ("contract", "cause-1", "OrderCreated")
    assert recorded.sequence == result.position.sequence == result.first_sequence
    assert (await store.load(StreamId("order", "404"))).events == []


async def test_load_after_a_position_returns_only_the_tail(subject: Subject) -> None:
    store, stream = subject.store, StreamId("order", "2")
    first = await store.append(stream, [NewEvent(event=order_created(2))], NEW, META)
    second = await store.append(stream, [NewEvent(event=order_paid(2))], first.position, META)
    tail = await store.load(stream, first.position)
    assert [e.event for e in tail.events] == [order_paid(2)]
    assert tail.position == second.position
    empty = await store.load(stream, second.position)
    assert (empty.events, empty.position) == ([], second.position)


async def test_concurrent_appends_exactly_one_wins(subject: Subject) -> None:
    store, stream = subject.store, StreamId("order", "3")
    base = await store.append(stream, [NewEvent(event=order_created(3))], NEW, META)

    async def attempt(i: int) -> str:
        try:
            await store.append(stream, [NewEvent(event=order_paid(3, f"p{i}"))], base.position, META)
        except ConcurrencyError:
            return "conflict"
        return "ok"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert (outcomes.count("ok"), outcomes.count("conflict")) == (1, 19)
    assert (await store.load(stream)).position.version == 2


async def test_a_new_stream_expects_nothing_stored(subject: Subject) -> None:
    store, stream = subject.store, StreamId("order", "4")
    await store.append(stream, [NewEvent(event=order_created(4))], NEW, META)
    with pytest.raises(ConcurrencyError):
        await store.append(stream, [NewEvent(event=order_created(4))], NEW, META)


async def test_a_batch_is_all_or_nothing(subject: Subject) -> None:
    store, stream = subject.store, StreamId("order", "5")
    ok = await store.append(
        stream, [NewEvent(event=order_created(5)), NewEvent(event=order_paid(5))], NEW, META
    )
    assert ok.position.version == 2
    assert ok.first_sequence == ok.position.sequence - 1
    before = await store.last_sequence()
    batch = [NewEvent(event=shipped(5, f"t{i}")) for i in range(3)]
    with pytest.raises(ConcurrencyError):  # a stale expected position: none of the three is stored
        await store.append(stream, batch, Position(1, ok.first_sequence), META)
    assert await store.last_sequence() == before
    assert (await store.load(stream)).position.version == 2


async def test_a_retried_append_is_a_duplicate_not_a_conflict(subject: Subject) -> None:
    store, stream = subject.store, StreamId("order", "6")
    single = [NewEvent(event=order_created(6))]
    first = await store.append(stream, single, NEW, META)
    again = await store.append(stream, single, NEW, META)
    assert again.duplicate
    assert (again.position, again.first_sequence) == (first.position, first.first_sequence)
    batch = [NewEvent(event=order_paid(6)), NewEvent(event=shipped(6))]
    b1 = await store.append(stream, batch, first.position, META)
    await store.append(stream, [NewEvent(event=shipped(6, "x"))], b1.position, META)  # someone else
    b2 = await store.append(stream, batch, first.position, META)  # our retry, after theirs
    assert b2.duplicate
    assert b2.position == b1.position
    ids = [e.envelope.event_id for e in (await store.load(stream)).events]
    assert len(ids) == len(set(ids)) == 4


async def test_a_retry_after_the_duplicate_window_is_still_a_duplicate(subject: Subject) -> None:
    store, stream = subject.store, StreamId("order", "7")
    events = [NewEvent(event=order_created(7))]
    first = await store.append(stream, events, NEW, META)
    await subject.forget_recent_ids()
    again = await store.append(stream, events, NEW, META)
    assert again.duplicate
    assert again.position == first.position
    assert await store.last_sequence() == first.position.sequence


async def test_an_event_id_stored_elsewhere_is_not_stored_again(subject: Subject) -> None:
    store = subject.store
    a, b = StreamId("order", "8"), StreamId("order", "9")
    event_id = EventId("0190a000-0000-7000-8000-000000000008")
    await store.append(a, [NewEvent(event=order_created(8), event_id=event_id)], NEW, META)
    before = await store.last_sequence()
    with pytest.raises(ConcurrencyError):
        await store.append(b, [NewEvent(event=order_created(9), event_id=event_id)], NEW, META)
    assert await store.last_sequence() == before
    assert (await store.load(b)).events == []


async def test_multi_stream_append_is_atomic(subject: Subject) -> None:
    store = subject.store
    a, b = StreamId("order", "10"), StreamId("order", "11")
    ra, rb = await store.append_multi(
        [
            AppendRequest(a, [NewEvent(event=order_created(10))], NEW),
            AppendRequest(b, [NewEvent(event=order_created(11))], NEW),
        ],
        META,
    )
    assert (ra.position.version, rb.position.version) == (1, 1)
    assert rb.first_sequence == ra.position.sequence + 1
    before = await store.last_sequence()
    with pytest.raises(ConcurrencyError):  # b's expectation is stale: neither stream gets anything
        await store.append_multi(
            [
                AppendRequest(a, [NewEvent(event=order_paid(10))], ra.position),
                AppendRequest(b, [NewEvent(event=order_paid(11))], NEW),
            ],
            META,
        )
    assert await store.last_sequence() == before
    assert await store.append_multi([AppendRequest(a, [], ra.position)], META) == []


async def test_reads_follow_the_global_order_from_any_sequence(subject: Subject) -> None:
    store = subject.store
    assert await store.last_sequence() == 0
    expected = []
    for i in range(30):
        stream = StreamId("order", str(100 + i % 3))
        loaded = await store.load(stream)
        event = (
            order_created(100 + i % 3) if loaded.position.version == 0 else order_paid(100 + i % 3, f"p{i}")
        )
        res = await store.append(stream, [NewEvent(event=event)], loaded.position, META)
        expected.append(res.position.sequence)
    assert await store.last_sequence() == expected[-1]
    assert [e.sequence for e in await store.read_all(1, limit=10_000)] == expected
    assert [e.sequence for e in await store.read_all(expected[17], limit=5)] == expected[17:22]
    assert await store.read_all(expected[-1] + 1) == []
    one = await store.read_raw(1, limit=100, subjects="events.order.101")
    assert {m.subject for m in one} == {"events.order.101"}
    assert [m.sequence for m in one] == expected[1::3]
    assert len(await store.read_raw(1, limit=100, subjects="events.*.100")) == 10
    assert await store.read_raw(1, subjects="events.saga.>") == []
    first = (await store.read_raw(expected[0], limit=1))[0]
    recorded = (await store.load(StreamId("order", "100"))).events[0]
    assert first.headers["Nats-Msg-Id"] == recorded.envelope.event_id
    assert first.headers["Eda-Type"] == "OrderCreated"
    assert store.codec.decode(first.data, first.sequence) == recorded


async def test_an_append_has_at_most_max_batch_events(subject: Subject) -> None:
    store, stream = subject.store, StreamId("order", "12")
    too_many = [NewEvent(event=shipped(12, f"t{i}")) for i in range(MAX_BATCH + 1)]
    with pytest.raises(EventStoreError):
        await store.append(stream, too_many, NEW, META)
    assert await store.last_sequence() == 0
