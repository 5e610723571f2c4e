"""State and command of a catalog product: a closed union of frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class NoProduct:
    """A product never priced: it costs the configured default price, or cannot be ordered."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Product:
    """A priced product."""

    product_id: int
    price: Decimal
    currency: str
    updated_at: datetime


type ProductState = NoProduct | Product

INITIAL: ProductState = NoProduct()


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPrice:
    """Set a product's unit price (≥ 0, two decimals) in ``currency``."""

    product_id: int
    price: Decimal
    currency: str
    at: datetime
