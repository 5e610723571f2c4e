"""The API's order commands on the in-memory event store and id counter: create (fresh ids, an id
taken already, nothing burnt by invalid input) and cancel (If-Match, repeats)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from app.api.commands import ID_COLLISION_RETRIES, cancel_order, create_order
from app.api.deps import AppContext
from app.api.errors import Problem
from app.api.ids import InMemoryOrderIds
from app.api.metrics import ApiMetrics
from app.api.schemas import CancelOrderIn, CreateOrderIn
from app.domain.common import InvalidValue, NotFound
from app.domain.order import ORDER, CreateOrder
from app.eventstore.envelope import Metadata, StreamId, utcnow
from app.service.handler import CommandHandler, VersionMismatch
from app.settings import Settings
from tests.support.stores import memory_store

META = Metadata(correlation_id="test")
BODY = CreateOrderIn(user_id=7, amount=19.99)


def context(**overrides: Any) -> AppContext:
    values: dict[str, Any] = {
        "settings": Settings(),
        "nc": None,  # not used by the commands
        "store": memory_store(),
        "snapshots": None,
        "pool": None,
        "ids": InMemoryOrderIds(),
        "notifications": None,
        "idempotency": None,
        "metrics": ApiMetrics(),
    }
    return AppContext(**(values | overrides))


async def test_create_takes_the_next_id_and_appends_the_order() -> None:
    ctx = context()
    response = await create_order(ctx, BODY, META, None, "/api/v1/orders")
    assert response.status == 201
    assert orjson.loads(response.body) == {"order_id": 1, "status": "created", "version": 1}
    assert response.headers["Location"] == "/api/v1/orders/1"
    [event] = (await ctx.store.load(StreamId("order", "1"))).events
    assert (event.envelope.type, event.event.user_id) == ("OrderCreated", 7)


async def test_an_id_taken_already_is_skipped() -> None:
    ctx = context()  # the counter was reset: order 1 exists already
    taken = CreateOrder(order_id=1, user_id=1, items=(), amount=Decimal("19.99"), at=utcnow())
    await CommandHandler(ctx.store, ORDER).execute(1, taken, META)
    response = await create_order(ctx, BODY, META, None, "/api/v1/orders")
    assert orjson.loads(response.body)["order_id"] == 2
    assert len((await ctx.store.load(StreamId("order", "1"))).events) == 1


async def test_invalid_input_burns_no_id_and_no_id_left_is_a_503() -> None:
    ctx = context(ids=InMemoryOrderIds())
    bad = CreateOrderIn.model_construct(user_id=0, amount=1.0, items=[], currency="USD")  # past the schema
    with pytest.raises(InvalidValue):
        await create_order(ctx, bad, META, None, "/api/v1/orders")
    assert await ctx.ids.next() == 1  # nothing was taken
    for order_id in range(2, 2 + ID_COLLISION_RETRIES):  # every id it will try exists
        taken = CreateOrder(order_id=order_id, user_id=1, items=(), amount=Decimal("19.99"), at=utcnow())
        await CommandHandler(ctx.store, ORDER).execute(order_id, taken, META)
    with pytest.raises(Problem) as problem:
        await create_order(ctx, BODY, META, None, "/api/v1/orders")
    assert problem.value.status == 503


async def test_cancel_checks_if_match_and_a_repeat_changes_nothing() -> None:
    ctx = context()
    await create_order(ctx, BODY, META, None, "/api/v1/orders")
    reason = CancelOrderIn(reason="changed my mind")
    with pytest.raises(VersionMismatch):
        await cancel_order(ctx, 1, reason, META, '"2"')
    assert await cancel_order(ctx, 1, reason, META, '"1"') == ("cancelled", 2)
    assert await cancel_order(ctx, 1, reason, META, None) == ("cancelled", 2)
    with pytest.raises(NotFound):
        await cancel_order(ctx, 99, reason, META, None)
