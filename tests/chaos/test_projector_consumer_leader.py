"""The projector through consumer leader changes on a 3-node cluster: a step-down of its R3 consumer's
leader ends the waiting pull requests with ``409 Leadership Change`` — the projector asks the new leader
again and goes on, with no failed cycle and no traceback (it used to fail the whole cycle: reconnect to
PostgreSQL, re-take the lock, recreate the consumer, and log a traceback each time), and the read model
is still the fold of the stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from app.deploy.provision import provision
from app.domain.order import ORDER, CreateOrder, MarkOrderPaid, OrderItem
from app.eventstore.envelope import Metadata
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.readmodel import db
from app.readmodel.migrations import migrate
from app.readmodel.projector import DURABLE, Projector
from app.readmodel.queries import get_order, record_from_events
from app.readmodel.sql import read_checkpoint
from app.service.handler import CommandHandler
from tests.support.eventually import eventually
from tests.support.workload import codec_for

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

SCHEMA = "readmodel"
STEP_DOWNS = 3
T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
META = Metadata(correlation_id="chaos")


def create(order_id: int) -> CreateOrder:
    items = (OrderItem(product_id=1, quantity=2),)
    return CreateOrder(order_id=order_id, user_id=7, items=items, amount=Decimal("10.00"), at=T0)


async def consumer_leader(nc: NATS) -> str | None:
    try:
        info = await nc.jetstream(timeout=2.0).consumer_info(STREAM, DURABLE)
    except Exception:
        return None
    return info.cluster.leader if info.cluster else None


async def step_down(nc: NATS) -> str:
    """Move the projector's consumer leader away from where it is; the new leader's name."""
    before = await eventually(lambda: consumer_leader(nc), what="a consumer leader")
    for _ in range(20):
        with contextlib.suppress(Exception):  # an election under way answers with an error: try again
            reply = await nc.request(f"$JS.API.CONSUMER.LEADER.STEPDOWN.{STREAM}.{DURABLE}", b"", timeout=5)
            if json.loads(reply.data).get("success"):
                break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError("the consumer leader did not step down")

    async def moved() -> str | None:
        leader = await consumer_leader(nc)
        return leader if leader and leader != before else None

    return await eventually(moved, what="a new consumer leader")


async def test_consumer_leader_changes_are_ridden_through(
    connect: Callable[[str], Awaitable[NATS]], readmodel_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await connect("chaos-admin")
    await provision(admin, 3)
    store = await JetStreamEventStore.open(admin, codec_for("order"))
    pg = await db.connect(readmodel_dsn)
    await migrate(pg, SCHEMA)
    projector_nc = await connect("projector")
    projector = Projector(projector_nc, store.codec, readmodel_dsn, SCHEMA)
    repo = CommandHandler(store, ORDER)
    task = asyncio.create_task(projector.run())
    try:
        with caplog.at_level(logging.INFO, logger="app.readmodel.projector"):
            await repo.execute(1, create(1), META)
            await eventually(lambda: get_order(pg, SCHEMA, 1), what="order 1 projected")
            leaders = []
            for order_id in range(2, 2 + STEP_DOWNS):
                leaders.append(await step_down(admin))
                await repo.execute(order_id, create(order_id), META)
                await repo.execute(
                    order_id, MarkOrderPaid(order_id=order_id, payment_id=f"p-{order_id}", at=T0), META
                )
                await eventually(lambda oid=order_id: get_order(pg, SCHEMA, oid), what=f"order {order_id}")
            last = await store.last_sequence()
            await eventually(lambda: _checkpoint_at(pg, last), what="the checkpoint at the stream's end")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    try:
        for order_id in range(1, 2 + STEP_DOWNS):
            assert await get_order(pg, SCHEMA, order_id) == record_from_events(
                await repo.repository.history(order_id)
            )
    finally:
        await pg.close()
    assert projector.status.last_error is None, projector.status.last_error  # no failed cycle
    assert projector.status.repulls >= STEP_DOWNS, (leaders, projector.status)
    assert projector.status.consumer_restarts == 0, projector.status
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def _checkpoint_at(pg: asyncpg.Connection, last: int) -> bool:
    return await read_checkpoint(pg, SCHEMA) >= last
