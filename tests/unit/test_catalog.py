"""The catalog (product prices) and the pure pricing of an order; the owner rules of the Order decider."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.domain.catalog import PRODUCT, AmountMismatch, NoProduct, Product, SetPrice, order_total
from app.domain.catalog.pricing import Unpriced
from app.domain.common import InvalidValue, NotFound
from app.domain.order import INITIAL, ORDER, CancelOrder, CreateOrder, OrderItem

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
ITEMS = (OrderItem(product_id=1, quantity=2), OrderItem(product_id=2, quantity=1))


def priced(product_id: int, price: str, currency: str = "USD") -> Product:
    return Product(product_id=product_id, price=Decimal(price), currency=currency, updated_at=T0)


def test_total_is_the_sum_of_catalog_prices() -> None:
    products = {1: priced(1, "19.99"), 2: priced(2, "5.00")}
    assert order_total(ITEMS, products, currency="USD") == Decimal("44.98")
    assert order_total(ITEMS, products, currency="USD", claimed=Decimal("44.98")) == Decimal("44.98")


def test_a_tampered_amount_names_the_total() -> None:
    products = {1: priced(1, "19.99"), 2: priced(2, "5.00")}
    with pytest.raises(AmountMismatch) as refused:
        order_total(ITEMS, products, currency="USD", claimed=Decimal("0.00"))
    assert refused.value.total == Decimal("44.98")
    assert "44.98" in refused.value.message


def test_zero_only_when_the_catalog_says_zero() -> None:
    free = {1: priced(1, "0.00"), 2: priced(2, "0")}
    assert order_total(ITEMS, free, currency="USD", claimed=Decimal("0.00")) == Decimal("0.00")
    with pytest.raises(AmountMismatch):
        order_total(ITEMS, {1: priced(1, "0.01"), 2: priced(2, "0")}, currency="USD", claimed=Decimal(0))


def test_unpriced_products_cost_the_default_or_cannot_be_ordered() -> None:
    with pytest.raises(Unpriced, match="product 2"):
        order_total(ITEMS, {1: priced(1, "1.00"), 2: NoProduct()}, currency="USD")
    default = order_total(ITEMS, {1: priced(1, "1.00")}, currency="USD", default_price=Decimal("99.99"))
    assert default == Decimal("101.99")


def test_currency_must_match_the_catalog() -> None:
    with pytest.raises(InvalidValue, match="EUR"):
        order_total(ITEMS, {1: priced(1, "1.00", "EUR"), 2: priced(2, "1.00")}, currency="USD")


def test_set_price_is_idempotent_and_validated() -> None:
    command = SetPrice(product_id=3, price=Decimal("12.50"), currency="USD", at=T0)
    events = PRODUCT.decide(command, PRODUCT.initial)
    state = PRODUCT.fold(events)
    assert state == priced(3, "12.50")
    assert PRODUCT.decide(command, state) == []
    for bad in (Decimal("-1"), Decimal("1.005")):
        with pytest.raises(InvalidValue):
            PRODUCT.decide(SetPrice(product_id=3, price=bad, currency="USD", at=T0), state)


def test_owner_defaults_to_the_customer_and_guards_cancel() -> None:
    seed = CreateOrder(order_id=1, user_id=123, items=(), amount=Decimal("99.99"), at=T0)
    [created] = ORDER.decide(seed, INITIAL)
    assert created.owner == "123"
    order = ORDER.fold([created])
    stranger = CancelOrder(order_id=1, reason="x", at=T0, owner="456")
    with pytest.raises(NotFound) as hidden:
        ORDER.decide(stranger, order)
    with pytest.raises(NotFound) as missing:
        ORDER.decide(stranger, INITIAL)
    assert hidden.value.message == missing.value.message  # no existence leak
    assert ORDER.decide(CancelOrder(order_id=1, reason="x", at=T0, owner="123"), order)
    assert ORDER.decide(CancelOrder(order_id=1, reason="x", at=T0), order)  # orders:cancel:any
