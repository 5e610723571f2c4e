"""An order's total from the catalog, and the check of the amount a client claims (pure).

The server decides what an order costs: the sum of each line's unit price times its quantity, in the
order's currency. A client may send ``amount`` as a check (what its cart showed); if it differs from
the total, the order is refused with the total named, so nothing is ever charged at a client's price.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from app.domain.catalog.state import Product, ProductState
from app.domain.common import InvalidValue
from app.domain.order.events import OrderItem


class AmountMismatch(InvalidValue):
    """The client's ``amount`` is not the catalog total; ``total`` is what the order costs."""

    code = "amount-mismatch"

    def __init__(self, claimed: Decimal, total: Decimal, currency: str) -> None:
        super().__init__(f"amount {claimed} does not match the catalog total {total} {currency}")
        self.total = total
        self.currency = currency


class Unpriced(InvalidValue):
    """A product without a price (and no default price): it cannot be ordered."""

    code = "product-not-priced"


def _unit_price(
    item: OrderItem, state: ProductState | None, default: Decimal | None, currency: str
) -> Decimal:
    if isinstance(state, Product):
        if state.currency != currency:
            raise InvalidValue(
                f"product {item.product_id} is priced in {state.currency}, the order is in {currency}"
            )
        return state.price
    if default is None:
        raise Unpriced(f"product {item.product_id} has no price in the catalog")
    return default


def order_total(
    items: Sequence[OrderItem],
    products: Mapping[int, ProductState],
    *,
    currency: str,
    default_price: Decimal | None = None,
    claimed: Decimal | None = None,
) -> Decimal:
    """The catalog total of ``items``; ``AmountMismatch`` if ``claimed`` is given and differs."""
    total = sum(
        (
            _unit_price(item, products.get(item.product_id), default_price, currency) * item.quantity
            for item in items
        ),
        Decimal("0.00"),
    ).quantize(Decimal("0.01"))
    if claimed is not None and claimed != total:
        raise AmountMismatch(claimed, total, currency)
    return total
