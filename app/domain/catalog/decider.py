"""The product decider: ``SetPrice`` → ``ProductPriced`` (nothing when the price is already that)."""

from __future__ import annotations

import re

from app.domain.catalog.events import PRODUCT_EVENTS, ProductEvent, ProductPriced
from app.domain.catalog.state import INITIAL, NoProduct, Product, ProductState, SetPrice
from app.domain.common import Decider, InvalidValue, cannot_apply, money, positive_int

_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_PRICE = 1_000_000_000


def decide(command: SetPrice, state: ProductState) -> list[ProductEvent]:
    """Price a product; setting the price it already has changes nothing (idempotent)."""
    match command:
        case SetPrice():
            positive_int(command.product_id, field="product_id")
            price = money(command.price, field="price")
            if price > MAX_PRICE:
                raise InvalidValue(f"price must be at most {MAX_PRICE}")
            if not _CURRENCY.match(command.currency):
                raise InvalidValue(f"currency must be an ISO 4217 code like 'USD', got {command.currency!r}")
            if isinstance(state, Product) and (state.price, state.currency) == (price, command.currency):
                return []
            return [
                ProductPriced(
                    product_id=command.product_id, price=price, currency=command.currency, at=command.at
                )
            ]
        case _:
            raise TypeError(f"unknown product command {command!r}")


def evolve(state: ProductState, event: ProductEvent) -> ProductState:
    """Apply one event (total for the events ``decide`` emits)."""
    match event:
        case ProductPriced():
            return Product(
                product_id=event.product_id, price=event.price, currency=event.currency, updated_at=event.at
            )
        case _:
            raise cannot_apply(event, state)


PRODUCT: Decider[SetPrice, ProductEvent, ProductState] = Decider(
    aggregate_type="product",
    decide=decide,
    evolve=evolve,
    initial=INITIAL,
    event_types=PRODUCT_EVENTS,
    state_types=(NoProduct, Product),
)
