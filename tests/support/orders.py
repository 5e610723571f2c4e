"""Orders for tests: events to append directly (``order_created``, ``order_paid``), an order's whole
lifecycle as commands appended for many orders at once, and random orders (items, amounts the payment
worker declines)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from decimal import Decimal

from app.domain.order import (
    CompleteOrder,
    CreateOrder,
    MarkOrderPaid,
    OrderCreated,
    OrderItem,
    OrderPaid,
    ShipOrder,
)
from app.eventstore.envelope import Metadata
from app.service.handler import CommandHandler

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
META = Metadata(correlation_id="crash-test")


def order_created(order_id: int, amount: str = "10.00") -> OrderCreated:
    """Customer 1's order of one unit of product 1."""
    item = OrderItem(product_id=1, quantity=1)
    return OrderCreated(
        order_id=order_id, user_id=1, items=(item,), amount=Decimal(amount), currency="USD", at=T0, owner="1"
    )


def order_paid(order_id: int, payment_id: str = "p") -> OrderPaid:
    return OrderPaid(order_id=order_id, payment_id=payment_id, amount=Decimal("10.00"), at=T0)


def lifecycle(order_id: int) -> list[object]:
    """Create, pay, ship, complete: four events."""
    return [
        CreateOrder(
            order_id=order_id,
            user_id=order_id % 17 + 1,
            items=(OrderItem(product_id=order_id % 5 + 1, quantity=1),),
            amount=Decimal(order_id) / 4,
            at=T0,
        ),
        MarkOrderPaid(order_id=order_id, payment_id=f"p-{order_id}", at=T0),
        ShipOrder(order_id=order_id, tracking_number=f"t-{order_id}", at=T0),
        CompleteOrder(order_id=order_id, at=T0),
    ]


async def append_lifecycles(
    orders: CommandHandler,  # type: ignore[type-arg]
    count: int,
    done: asyncio.Event,
    *,
    wave: int = 25,
    jitter_s: float = 0.0,
) -> None:
    """The lifecycles of orders ``1..count``, ``wave`` orders at a time; sets ``done`` at the end."""

    async def one(order_id: int) -> None:
        for command in lifecycle(order_id):
            await orders.execute(order_id, command, META)
            if jitter_s:
                await asyncio.sleep(random.uniform(0, jitter_s))

    for start in range(1, count + 1, wave):
        await asyncio.gather(*(one(i) for i in range(start, min(start + wave, count + 1))))
    done.set()


def random_order(rng: random.Random, oid: int) -> CreateOrder:
    """An order of 0-3 of products 1..20; amounts that complete, and some the payment worker declines."""
    items = tuple(
        OrderItem(product_id=p, quantity=rng.randint(1, 3))
        for p in rng.sample(range(1, 21), rng.randint(0, 3))
    )
    amount = Decimal(rng.choice(["10.00", "99.99", "950.00"]))
    return CreateOrder(
        order_id=oid, user_id=rng.randint(1, 20), items=items, amount=amount, at=datetime.now(UTC)
    )
