"""The order-id contract (``app.api.ids.IdSource``): the JetStream counter and its in-memory twin hand
out dense, unique ids from 1, whoever asks at once."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NATS

from app.api.ids import IdSource, InMemoryOrderIds, OrderIds


@pytest.fixture
def memory_ids() -> IdSource:
    return InMemoryOrderIds()


@pytest.fixture
async def jetstream_ids(nc: NATS) -> IdSource:
    return await OrderIds.open(nc)


@pytest.fixture(params=["memory", "jetstream"])
def ids(request: pytest.FixtureRequest) -> IdSource:
    found: IdSource = request.getfixturevalue(f"{request.param}_ids")
    return found


async def test_ids_are_dense_and_unique_from_one(ids: IdSource) -> None:
    assert [await ids.next() for _ in range(3)] == [1, 2, 3]
    got = await asyncio.gather(*(ids.next() for _ in range(200)))
    assert sorted(got) == list(range(4, 204))
