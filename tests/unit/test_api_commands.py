"""The API's order commands on the in-memory event store and id counter: create (fresh ids, an id
taken already, catalog prices, nothing burnt by refused input) and cancel (If-Match, repeats, owners)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from app.api.admission import SagaBacklog
from app.api.commands import ID_COLLISIONS, cancel_order, create_order
from app.api.deps import AppContext
from app.api.errors import Problem
from app.api.ids import InMemoryOrderIds
from app.api.metrics import ApiMetrics
from app.api.schemas import CancelOrderIn, CreateOrderIn
from app.auth.scopes import ALL_SCOPES, CUSTOMER_SCOPES, Principal
from app.domain.catalog import PRODUCT, AmountMismatch, SetPrice
from app.domain.order import ORDER, CreateOrder
from app.eventstore.envelope import Metadata, StreamId, utcnow
from app.service.handler import CommandHandler
from app.service.repository import Repository
from app.service.statecache import StateCache
from app.settings import Settings
from tests.support.stores import memory_store

META = Metadata(correlation_id="test")
BACKEND = Principal(subject="backend", scopes=ALL_SCOPES)
CUSTOMER = Principal(subject="7", scopes=CUSTOMER_SCOPES)
BODY = CreateOrderIn(user_id=7, amount=19.99)
PATH = "/api/v1/orders"


def context() -> AppContext:
    store = memory_store()
    values: dict[str, Any] = {
        "settings": Settings(),
        "nc": None,  # the commands use none of these
        "pool": None,
        "notifications": None,
        "idempotency": None,
        "auth": None,
        "store": store,
        "snapshots": None,
        "shutdown": None,
        "streams": None,
        "live": None,
        "ids": InMemoryOrderIds(),
        "metrics": ApiMetrics(),
        "products": StateCache(store, Repository(store, PRODUCT)),
        "backlog": SagaBacklog(None, 0),  # type: ignore[arg-type]  # admission off: never reads NATS
    }
    return AppContext(**values)


async def create(ctx: AppContext, body: CreateOrderIn = BODY, principal: Principal = BACKEND) -> int:
    response = await create_order(ctx, principal, body=body, meta=META, key=None, path=PATH)
    assert response.status == 201
    order_id: int = orjson.loads(response.body)["order_id"]
    return order_id


async def taken(ctx: AppContext, order_id: int) -> None:
    cmd = CreateOrder(order_id=order_id, user_id=1, items=(), amount=Decimal("1.00"), at=utcnow())
    await CommandHandler(ctx.store, ORDER).execute(order_id, cmd, META)


async def test_create_takes_the_next_id_and_appends_the_order() -> None:
    ctx = context()
    response = await create_order(ctx, BACKEND, body=BODY, meta=META, key=None, path=PATH)
    assert orjson.loads(response.body) == {"order_id": 1, "status": "created", "version": 1}
    assert response.headers["Location"] == "/api/v1/orders/1"
    [event] = (await ctx.store.load(StreamId("order", "1"))).events
    assert (event.envelope.type, event.event.user_id, event.event.owner) == ("OrderCreated", 7, "7")


async def test_an_id_taken_already_is_skipped_and_none_left_is_a_503() -> None:
    ctx = context()
    await taken(ctx, 1)  # the counter was reset: order 1 exists already
    assert await create(ctx) == 2
    assert len((await ctx.store.load(StreamId("order", "1"))).events) == 1
    for order_id in range(3, 3 + ID_COLLISIONS.attempts):  # every id it will try next exists
        await taken(ctx, order_id)
    with pytest.raises(Problem) as problem:
        await create(ctx)
    assert problem.value.status == 503


async def test_a_customer_pays_the_catalog_price_and_a_wrong_amount_burns_no_id() -> None:
    ctx = context()
    price = SetPrice(product_id=5, price=Decimal("2.50"), currency="USD", at=utcnow())
    await CommandHandler(ctx.store, PRODUCT).execute(5, price, META)
    body = CreateOrderIn.model_validate({"items": [{"product_id": 5, "quantity": 4}]})
    order_id = await create(ctx, body, CUSTOMER)
    [event] = (await ctx.store.load(StreamId("order", str(order_id)))).events
    assert (event.event.amount, event.event.owner) == (Decimal("10.00"), "7")
    wrong = CreateOrderIn.model_validate({"items": [{"product_id": 5, "quantity": 4}], "amount": 9.0})
    with pytest.raises(AmountMismatch):
        await create(ctx, wrong, CUSTOMER)
    assert await ctx.ids.next() == order_id + 1  # nothing was taken for the refused order


async def test_cancel_checks_if_match_owners_and_a_repeat_changes_nothing() -> None:
    ctx = context()
    body = CreateOrderIn.model_validate({"user_id": 7, "amount": 5.0})
    order_id = await create(ctx, body)
    reason = CancelOrderIn(reason="changed my mind")
    stranger = Principal(subject="8", scopes=CUSTOMER_SCOPES)
    with pytest.raises(Problem) as hidden:  # another customer's order does not exist for them
        await cancel_order(ctx, stranger, order_id=order_id, body=reason, meta=META, if_match=None)
    assert hidden.value.status == 404
    done = await cancel_order(ctx, CUSTOMER, order_id=order_id, body=reason, meta=META, if_match='"1"')
    assert done == ("cancelled", 2)
    again = await cancel_order(ctx, CUSTOMER, order_id=order_id, body=reason, meta=META, if_match=None)
    assert again == ("cancelled", 2)
