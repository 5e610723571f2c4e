"""The order projector against real NATS + PostgreSQL: batches, checkpoint skip, failover, rewind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from app.domain.order import ORDER, CancelOrder, CreateOrder, MarkOrderPaid, OrderItem
from app.eventstore import jsapi
from app.eventstore.envelope import Metadata
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.readmodel import db
from app.readmodel.apply import apply_batch
from app.readmodel.migrations import create_readmodel_schema, load_migrations, migrate
from app.readmodel.projector import DURABLE, SILENT_S, Projector, consumer_lag
from app.readmodel.queries import get_order, list_orders, record_from_events
from app.readmodel.sql import read_checkpoint, set_checkpoint
from app.service.handler import CommandHandler
from tests.support.eventually import eventually

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
META = Metadata(correlation_id="test")
SCHEMA = "readmodel"


@pytest.fixture
async def pg(fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await db.connect(fresh_db)
    await migrate(conn, SCHEMA)
    yield conn
    await conn.close()


def create(order_id: int, amount: str = "10.00") -> CreateOrder:
    return CreateOrder(
        order_id=order_id,
        user_id=7,
        items=(OrderItem(product_id=1, quantity=2),),
        amount=Decimal(amount),
        at=T0,
    )


@contextlib.asynccontextmanager
async def running(projector: Projector) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(projector.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_migrations_are_idempotent_and_concurrent(fresh_db: str) -> None:
    conns = [await asyncpg.connect(fresh_db) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c, SCHEMA) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, len(load_migrations())]
        assert await migrate(conns[0], SCHEMA) == []
    finally:
        for c in conns:
            await c.close()


async def test_projects_orders_and_timeline(
    store: JetStreamEventStore, nc: NATS, pg: asyncpg.Connection, fresh_db: str
) -> None:
    repo = CommandHandler(store, ORDER)
    for i in range(1, 4):
        await repo.execute(i, create(i), META)
    await repo.execute(2, MarkOrderPaid(order_id=2, payment_id="p-2", at=T0), META)
    await repo.execute(3, CancelOrder(order_id=3, reason="changed mind", at=T0), META)
    projector = Projector(nc, store.codec, fresh_db, SCHEMA)
    async with running(projector):

        async def done() -> bool:
            rec = await get_order(pg, SCHEMA, 3)
            return rec is not None and rec.version == 2

        await eventually(done)
        await eventually(lambda: _lag_zero(nc))
    one = await get_order(pg, SCHEMA, 1)
    two = await get_order(pg, SCHEMA, 2)
    assert one is not None
    assert two is not None
    assert (one.status, one.version, one.amount, one.items) == (
        "created",
        1,
        Decimal("10.00"),
        [{"product_id": 1, "quantity": 2}],
    )
    assert two.status == "paid"
    assert [e.type for e in two.events or []] == ["OrderCreated", "OrderPaid"]
    for oid in (1, 2, 3):
        assert await get_order(pg, SCHEMA, oid) == record_from_events(await repo.repository.history(oid))
    page = await list_orders(pg, SCHEMA, after=1, limit=1)
    assert [r.order_id for r in page] == [2]
    assert [r.order_id for r in await list_orders(pg, SCHEMA, status="cancelled")] == [3]
    assert await read_checkpoint(pg, SCHEMA) == await store.last_sequence()


async def _lag_zero(nc: NATS) -> bool:
    return await consumer_lag(nc) == 0


async def test_apply_batch_skips_at_or_below_checkpoint(
    store: JetStreamEventStore, pg: asyncpg.Connection
) -> None:
    repo = CommandHandler(store, ORDER)
    await repo.execute(1, create(1), META)
    await repo.execute(1, MarkOrderPaid(order_id=1, payment_id="p", at=T0), META)
    events = await store.read_all(1)
    assert await apply_batch(pg, SCHEMA, events[:1]) == 1
    assert await apply_batch(pg, SCHEMA, events) == 1  # the first one is at the checkpoint: skipped
    assert await apply_batch(pg, SCHEMA, events) == 0
    rows = await pg.fetch("SELECT version FROM readmodel.order_events ORDER BY version")
    assert [r["version"] for r in rows] == [1, 2]


async def test_failover_between_two_projectors(
    store: JetStreamEventStore, nc: NATS, pg: asyncpg.Connection, fresh_db: str
) -> None:
    repo = CommandHandler(store, ORDER)
    first = Projector(nc, store.codec, fresh_db, SCHEMA, retry_s=0.1)
    second = Projector(nc, store.codec, fresh_db, SCHEMA, retry_s=0.1)
    async with running(second):
        async with running(first):
            await eventually(lambda: first.status.leader or second.status.leader)
            await asyncio.sleep(0.3)  # both had time to try: exactly one leads
            assert first.status.leader != second.status.leader
            await repo.execute(1, create(1), META)
            await eventually(lambda: _has(pg, 1))
        if not second.status.leader:  # the first one led; it is gone now, the standby takes over
            await eventually(lambda: second.status.leader)
        await repo.execute(2, create(2), META)
        await eventually(lambda: _has(pg, 2))
    assert await pg.fetchval("SELECT count(*) FROM readmodel.order_events") == 2


async def test_rebuilt_schema_swap_restarts_from_new_checkpoint(
    store: JetStreamEventStore, nc: NATS, pg: asyncpg.Connection, fresh_db: str
) -> None:
    repo = CommandHandler(store, ORDER)
    await repo.execute(1, create(1), META)
    projector = Projector(nc, store.codec, fresh_db, SCHEMA)
    async with running(projector):
        await eventually(lambda: _has(pg, 1))
        # a "rebuild": an empty shadow schema with checkpoint 0, swapped in
        async with pg.transaction():
            await create_readmodel_schema(pg, "readmodel_shadow")
            await set_checkpoint(pg, "readmodel_shadow", 0)
            await pg.execute("ALTER SCHEMA readmodel RENAME TO readmodel_old")
            await pg.execute("ALTER SCHEMA readmodel_shadow RENAME TO readmodel")
        await repo.execute(2, create(2), META)
        await eventually(lambda: _has(pg, 2))
        await eventually(lambda: _has(pg, 1))
    assert await pg.fetchval("SELECT count(*) FROM readmodel.order_events") == 2


async def _has(pg: asyncpg.Connection, order_id: int) -> bool:
    return await get_order(pg, SCHEMA, order_id) is not None


async def test_fast_path_gives_way_to_a_swapped_schema_with_the_same_checkpoint(
    store: JetStreamEventStore, nc: NATS, pg: asyncpg.Connection, fresh_db: str
) -> None:
    """The leader writes from memory (its rows, its checkpoint) with one guarded statement. A rebuild
    that ends exactly where the live model was swaps in a schema with the SAME checkpoint value: the
    guard also checks the checkpoint table, so nothing goes to the renamed old schema and the next batch
    is written to the new one from what is stored there."""
    repo = CommandHandler(store, ORDER)
    projector = Projector(nc, store.codec, fresh_db, SCHEMA)
    async with running(projector):
        for order_id in (1, 2, 3):
            await repo.execute(order_id, create(order_id), META)
            await eventually(lambda oid=order_id: _has(pg, oid))  # type: ignore[misc]
        assert projector.status.fast_batches >= 1
        async with pg.transaction():  # as the rebuild's swap: under the live checkpoint table's lock
            await pg.execute("LOCK TABLE readmodel.projection_checkpoints IN EXCLUSIVE MODE")
            await create_readmodel_schema(pg, "readmodel_shadow")
            for table in ("orders", "order_events"):
                await pg.execute(f"INSERT INTO readmodel_shadow.{table} SELECT * FROM readmodel.{table}")
            await set_checkpoint(pg, "readmodel_shadow", await read_checkpoint(pg, SCHEMA))
            # the rebuilt row differs from what the leader holds in memory (say, a projection fix)
            await pg.execute("UPDATE readmodel_shadow.orders SET amount = 11.00 WHERE order_id = 1")
            await pg.execute("ALTER SCHEMA readmodel RENAME TO readmodel_old")
            await pg.execute("ALTER SCHEMA readmodel_shadow RENAME TO readmodel")
        fast_before = projector.status.fast_batches
        await repo.execute(1, MarkOrderPaid(order_id=1, payment_id="p-1", at=T0), META)

        async def paid() -> bool:
            rec = await get_order(pg, SCHEMA, 1)
            return rec is not None and rec.status == "paid"

        await eventually(paid)
        await repo.execute(2, MarkOrderPaid(order_id=2, payment_id="p-2", at=T0), META)
        await eventually(lambda: _version(pg, 2, 2))
        assert projector.status.fast_batches > fast_before  # back on the fast path on the new table
    old = await get_order(pg, "readmodel_old", 1)
    assert old is not None
    assert (old.status, old.version) == ("created", 1)  # nothing written to the renamed schema
    one = await get_order(pg, SCHEMA, 1)
    assert one is not None
    assert (one.status, one.version, one.amount) == ("paid", 2, Decimal("11.00"))  # built on the stored row
    for order_id in (2, 3):
        assert await get_order(pg, SCHEMA, order_id) == record_from_events(
            await repo.repository.history(order_id)
        )
    assert await read_checkpoint(pg, SCHEMA) == await store.last_sequence()


async def _version(pg: asyncpg.Connection, order_id: int, version: int) -> bool:
    rec = await get_order(pg, SCHEMA, order_id)
    return rec is not None and rec.version == version


@dataclass
class Lossy:
    """A projector whose pull requests can be lost on their way to the server (as a consumer leader
    change or a consumer still electing its leader loses them): ``drop(n)`` loses the next ``n``."""

    repo: CommandHandler
    projector: Projector
    dropped: list[float]
    drop: Callable[[int], None]


@pytest.fixture
def lossy(store: JetStreamEventStore, nc: NATS, fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> Lossy:
    subject = jsapi.consumer_next_subject(STREAM, DURABLE)
    publish = nc.publish
    dropped: list[float] = []
    allowance = [0]

    async def lossy_publish(subj: str, payload: bytes = b"", *args: Any, **kwargs: Any) -> None:
        if subj == subject and len(dropped) < allowance[0]:
            dropped.append(asyncio.get_running_loop().time())
            return
        await publish(subj, payload, *args, **kwargs)

    def drop(count: int) -> None:
        allowance[0] = len(dropped) + count

    monkeypatch.setattr(nc, "publish", lossy_publish)
    projector = Projector(nc, store.codec, fresh_db, SCHEMA)
    return Lossy(CommandHandler(store, ORDER), projector, dropped, drop)


async def test_a_lost_pull_request_is_asked_again(
    lossy: Lossy, pg: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """A pull request that never reaches the consumer leaves the projector without heartbeats: after one
    silent window it asks again — same consumer, same leader, nothing logged above info (a loaded
    cluster electing a new consumer's leader did this in CI, and the projector used to fail its cycle)."""
    repo, projector = lossy.repo, lossy.projector
    await repo.execute(1, create(1), META)
    lossy.drop(1)
    with caplog.at_level(logging.INFO, logger="app.readmodel.projector"):
        async with running(projector):
            await eventually(lambda: _has(pg, 1), timeout=SILENT_S * 4)
            await repo.execute(2, create(2), META)
            await eventually(lambda: _has(pg, 2))
    assert len(lossy.dropped) == 1
    assert (projector.status.repulls, projector.status.consumer_restarts) == (1, 0)
    assert projector.status.last_error is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("asking the consumer again" in r.getMessage() for r in caplog.records)


async def test_a_consumer_silent_after_asking_again_is_restarted_from_the_checkpoint(
    lossy: Lossy, store: JetStreamEventStore, pg: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """Still silent after asking again: the leader restarts its consumer from the checkpoint, keeping its
    lock and connection (a warning without a traceback, not a failed cycle)."""
    repo, projector = lossy.repo, lossy.projector
    async with running(projector):
        await repo.execute(1, create(1), META)
        await eventually(lambda: _has(pg, 1))
        lossy.drop(2)
        with caplog.at_level(logging.INFO, logger="app.readmodel.projector"):
            # the outstanding request expires (PULL_EXPIRES_S); the ones after it are lost
            await eventually(lambda: projector.status.consumer_restarts == 1, timeout=30)
            await repo.execute(2, create(2), META)
            await eventually(lambda: _has(pg, 2))
            await repo.execute(1, MarkOrderPaid(order_id=1, payment_id="p-1", at=T0), META)
            await eventually(lambda: _version(pg, 1, 2))
    assert len(lossy.dropped) == 2
    assert projector.status.repulls == 1
    assert projector.status.last_error is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"projector: no heartbeat from the consumer for {2 * SILENT_S:g} s;"
        " restarting the consumer from the checkpoint"
    ]
    assert all(r.exc_info is None for r in warnings)
    assert await read_checkpoint(pg, SCHEMA) == await store.last_sequence()
