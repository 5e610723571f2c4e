"""The Idempotency-Key store holds no pool connection while an order id is allocated (issue 17), and
still gives one id per key: a retry reuses it, a racing second request with the same key gets the
winner's id, a different body is a 422. Real PostgreSQL; the allocator is a coroutine we control."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
import pytest

from app.api.errors import Problem
from app.api.idempotency import IdempotencyStore, StoredResponse
from app.readmodel import db


@pytest.fixture
async def one_connection_pool(readmodel_dsn: str) -> asyncpg.Pool:
    pool = await db.create_pool(readmodel_dsn, size=1, acquire_timeout=1.0)
    yield pool
    await pool.close()


async def test_a_slow_id_allocation_holds_no_pool_connection(one_connection_pool: asyncpg.Pool) -> None:
    store = IdempotencyStore(one_connection_pool, 3600)
    allocating, release = asyncio.Event(), asyncio.Event()

    async def slow_allocate() -> int:
        allocating.set()
        await release.wait()  # the counter is slow (NATS busy, a leader election, ...)
        return 41

    claim = asyncio.create_task(store.claim("alice", "k1", "print", slow_allocate))
    await asyncio.wait_for(allocating.wait(), 5)
    # the only connection of the pool is free: a read does not wait behind the create
    assert await one_connection_pool.fetchval("SELECT 1") == 1
    release.set()
    assert (await claim).order_id == 41


async def test_one_id_per_key_retries_and_races(one_connection_pool: asyncpg.Pool) -> None:
    store = IdempotencyStore(one_connection_pool, 3600)
    ids = itertools.count(100)

    async def allocate() -> int:
        await asyncio.sleep(0.05)
        return next(ids)

    first, racing = await asyncio.gather(
        store.claim("bob", "k", "p", allocate), store.claim("bob", "k", "p", allocate)
    )
    assert first.order_id == racing.order_id  # the loser of the insert takes the winner's id
    retry = await store.claim("bob", "k", "p", allocate)
    assert (retry.order_id, retry.replay) == (first.order_id, None)  # pending: same id, no new one
    response = StoredResponse(201, b"{}", {"Location": f"/api/v1/orders/{first.order_id}"})
    await store.complete("bob", "k", response)
    assert (await store.claim("bob", "k", "p", allocate)).replay == response
    with pytest.raises(Problem) as reused:
        await store.claim("bob", "k", "other body", allocate)
    assert reused.value.status == 422
    other_caller = await store.claim("carol", "k", "p", allocate)  # keys are per caller
    assert other_caller.order_id != first.order_id


async def test_an_expired_key_is_a_new_key(one_connection_pool: asyncpg.Pool) -> None:
    store = IdempotencyStore(one_connection_pool, 60)
    ids = itertools.count(7)

    async def allocate() -> int:
        return next(ids)

    old = await store.claim("dan", "k", "p", allocate)
    await one_connection_pool.execute(
        "UPDATE eda.idempotency_keys SET created_at = now() - interval '2 minutes' WHERE caller = 'dan'"
    )
    renewed = await store.claim("dan", "k", "another body is fine now", allocate)
    assert renewed.order_id != old.order_id


async def test_an_exhausted_pool_fails_fast_with_pool_exhausted(one_connection_pool: asyncpg.Pool) -> None:
    async with one_connection_pool.acquire():
        with pytest.raises(db.PoolExhausted):
            await one_connection_pool.fetchval("SELECT 1")
    assert await one_connection_pool.fetchval("SELECT 2") == 2
