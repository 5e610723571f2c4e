"""Events of the Order aggregate (past tense, stable wire ``TYPE``, integer ``VERSION``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderItem:
    """One line of an order."""

    product_id: int
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCreated:
    """An order was placed. v1 had no ``currency``; v2 adds it (upcaster: v1 → ``"USD"``). v3 adds
    ``owner``, the authenticated subject the order belongs to (upcaster: v2 → ``str(user_id)``, the
    customer it was placed for). ``amount`` is the server's total (catalog prices; issue 14)."""

    TYPE: ClassVar[str] = "OrderCreated"
    VERSION: ClassVar[int] = 3
    order_id: int
    user_id: int
    items: tuple[OrderItem, ...]
    amount: Decimal
    currency: str
    at: datetime
    owner: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPaid:
    """The order's payment was captured. ``user_id`` (the customer, copied from the order) lets the
    shipping worker ship on this event alone; events stored before it was added decode with ``None``
    (a defaulted field: no new ``VERSION``, so a reader of the previous release still decodes new
    events, ignoring the field)."""

    TYPE: ClassVar[str] = "OrderPaid"
    VERSION: ClassVar[int] = 1
    order_id: int
    payment_id: str
    amount: Decimal
    at: datetime
    user_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderShipped:
    """The order left the warehouse."""

    TYPE: ClassVar[str] = "OrderShipped"
    VERSION: ClassVar[int] = 1
    order_id: int
    tracking_number: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCompleted:
    """The order was fulfilled; terminal."""

    TYPE: ClassVar[str] = "OrderCompleted"
    VERSION: ClassVar[int] = 1
    order_id: int
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled:
    """The order was cancelled (by the user or by a compensating saga); terminal."""

    TYPE: ClassVar[str] = "OrderCancelled"
    VERSION: ClassVar[int] = 1
    order_id: int
    reason: str
    at: datetime


type OrderEvent = OrderCreated | OrderPaid | OrderShipped | OrderCompleted | OrderCancelled

ORDER_EVENTS: tuple[type[OrderEvent], ...] = (
    OrderCreated,
    OrderPaid,
    OrderShipped,
    OrderCompleted,
    OrderCancelled,
)
