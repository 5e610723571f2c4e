"""State of the Order aggregate: a closed union of frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from app.domain.order.events import OrderItem


class OrderStatus(StrEnum):
    """The order's lifecycle (also the read model's ``status`` values)."""

    CREATED = "created"
    PAID = "paid"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class NoOrder:
    """Before ``OrderCreated``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """An existing order."""

    order_id: int
    user_id: int
    items: tuple[OrderItem, ...]
    amount: Decimal
    currency: str
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    owner: str = ""  # the subject it belongs to (OrderCreated v3; str(user_id) for older orders)
    payment_id: str | None = None
    tracking_number: str | None = None
    cancel_reason: str | None = None


type OrderState = NoOrder | Order

INITIAL: OrderState = NoOrder()
