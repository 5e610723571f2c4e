"""Events of the product catalog (past tense, stable wire ``TYPE``, integer ``VERSION``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductPriced:
    """A product's unit price was set (the first price or a change)."""

    TYPE: ClassVar[str] = "ProductPriced"
    VERSION: ClassVar[int] = 1
    product_id: int
    price: Decimal
    currency: str
    at: datetime


type ProductEvent = ProductPriced

PRODUCT_EVENTS: tuple[type[ProductEvent], ...] = (ProductPriced,)
