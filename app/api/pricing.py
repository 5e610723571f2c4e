"""What an order costs, decided by the server: the catalog price of each item (``app.domain.catalog``).

The products' states come through a ``StateCache`` (one JetStream round trip per product, all products
of an order at once, reading only events newer than the cached state), so a price set a moment ago is
the price charged. Orders without items have no catalog total: their amount is the trusted backend's
(``app.api.access`` lets only ``orders:write:any`` place them).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from app.api.deps import AppContext
from app.api.errors import Problem
from app.api.schemas import CreateOrderIn
from app.domain.catalog import order_total
from app.domain.common import money
from app.domain.order import OrderItem


def order_items(body: CreateOrderIn) -> tuple[OrderItem, ...]:
    return tuple(OrderItem(product_id=i.product_id, quantity=i.quantity) for i in body.items)


async def order_amount(ctx: AppContext, body: CreateOrderIn) -> Decimal:
    """The amount to charge for ``body``: the catalog total (``body.amount`` must match it if sent)."""
    claimed = None if body.amount is None else money(body.amount)
    if not body.items:
        if claimed is None:
            raise Problem(422, "amount-required", "Invalid request", "an order without items needs amount")
        return claimed
    items = order_items(body)
    loaded = await asyncio.gather(*(ctx.products.load(item.product_id) for item in items))
    default = ctx.settings.default_price
    return order_total(
        items,
        {item.product_id: state.state for item, state in zip(items, loaded, strict=True)},
        currency=body.currency,
        default_price=None if default is None else Decimal(default),
        claimed=claimed,
    )
