"""The store while JetStream cannot take an append (no stream leader: NATS answers "no responders"
at once, as a 3-node cluster does while it has lost quorum — see tests/chaos/test_quorum_loss.py):
it keeps retrying the same messages for its retry window and succeeds once the stream is back, and
when the window runs out it raises ``EventStoreError`` (the port's error), never a raw NATS error."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS

from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import NEW, Metadata, NewEvent, StreamId
from app.eventstore.jetstream import STREAM, JetStreamEventStore, events_stream_config
from app.eventstore.ports import EventStoreError
from tests.support.workload import ChaosTick

META = Metadata(correlation_id="test")


def codec() -> EventCodec:
    return EventCodec([*all_event_types(), ChaosTick])


async def test_append_rides_through_a_stream_without_leader(nc: NATS) -> None:
    store = await JetStreamEventStore.open(nc, codec(), retry_for=10.0)
    await nc.jetstream().delete_stream(STREAM)  # now nothing answers events.> : "no responders"
    stream = StreamId("chaos", "nr-1")
    event = NewEvent(event=ChaosTick(writer=0, n=0))
    append = asyncio.create_task(store.append(stream, [event], NEW, META))
    await asyncio.sleep(1.0)
    assert not append.done(), "the store gave up during a 1 s outage"
    await nc.jetstream().add_stream(events_stream_config(1))
    result = await asyncio.wait_for(append, 10)
    assert result.position.version == 1
    loaded = await store.load(stream)
    assert [e.envelope.event_id for e in loaded.events] == [event.event_id]
    await store.close()


async def test_append_gives_up_with_event_store_error(nc: NATS) -> None:
    store = await JetStreamEventStore.open(nc, codec(), retry_for=0.5)
    await nc.jetstream().delete_stream(STREAM)
    with pytest.raises(EventStoreError, match="not acknowledged"):
        await store.append(StreamId("chaos", "nr-2"), [NewEvent(event=ChaosTick(writer=0, n=0))], NEW, META)
    await store.close()
