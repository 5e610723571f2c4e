"""The product catalog: each product's price (aggregate type ``product``, stream ``events.product.<id>``),
and the pure pricing of an order from it (docs/catalog.md)."""

from app.domain.catalog.decider import PRODUCT, decide, evolve
from app.domain.catalog.events import ProductEvent, ProductPriced
from app.domain.catalog.pricing import AmountMismatch, order_total
from app.domain.catalog.state import INITIAL, NoProduct, Product, ProductState, SetPrice

__all__ = [
    "INITIAL",
    "PRODUCT",
    "AmountMismatch",
    "NoProduct",
    "Product",
    "ProductEvent",
    "ProductPriced",
    "ProductState",
    "SetPrice",
    "decide",
    "evolve",
    "order_total",
]
