"""Order ids from the JetStream counter against a real nats-server: dense, unique across allocators,
grouped under load (one counter write for many ids), and no id lost to a request cancelled while waiting."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS

from app.api.ids import STREAM, OrderIds
from app.deploy.provision import provision
from app.eventstore.required import NotProvisioned


async def counter_writes(nc: NATS) -> int:
    info = await nc.jetstream().stream_info(STREAM)
    return int(info.state.last_seq)


async def test_a_lone_request_gets_the_next_id_with_one_write(nc: NATS) -> None:
    ids = await OrderIds.open(nc)
    assert [await ids.next() for _ in range(3)] == [1, 2, 3]
    assert await counter_writes(nc) == 3


async def test_concurrent_requests_of_two_allocators_get_dense_unique_ids_in_few_writes(nc: NATS) -> None:
    first, second = await OrderIds.open(nc), OrderIds(nc)
    got = await asyncio.gather(*(ids.next() for _ in range(400) for ids in (first, second)))
    assert sorted(got) == list(range(1, 801))
    # Requests queued behind an in-flight increment share the next one.
    assert await counter_writes(nc) < 100


async def test_an_id_of_a_cancelled_request_goes_to_the_next_request(nc: NATS) -> None:
    ids = await OrderIds.open(nc)
    in_flight = asyncio.create_task(ids.next())
    await asyncio.sleep(0)  # the allocator sends the increment for this one
    queued = [asyncio.create_task(ids.next()) for _ in range(10)]
    await asyncio.sleep(0)
    for task in queued[::3]:
        task.cancel()
    outcomes = await asyncio.gather(in_flight, *queued, return_exceptions=True)
    results = [o for o in outcomes if isinstance(o, int)]
    assert len(results) == 1 + 10 - len(queued[::3])
    later = [await ids.next() for _ in range(4)]
    assert sorted(results + later) == list(range(1, len(results) + len(later) + 1))


async def test_a_counter_error_reaches_every_waiter_and_the_allocator_recovers(nc: NATS) -> None:
    await nc.jetstream().delete_stream(STREAM)
    ids = OrderIds(nc, timeout=0.5)  # the COUNTERS stream does not exist (yet): no responder
    outcomes = await asyncio.gather(*(ids.next() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(o, Exception) for o in outcomes)
    with pytest.raises(NotProvisioned, match="eda provision"):
        await OrderIds.open(nc)
    await provision(nc, 1)
    await OrderIds.open(nc)
    assert await ids.next() == 1
