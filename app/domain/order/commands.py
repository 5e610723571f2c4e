"""Commands of the Order aggregate (imperative). Time arrives on the command as ``at``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from app.domain.order.events import OrderItem


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateOrder:
    """Place an order; ``items`` may be empty (the seed's ``{"user_id": 123, "amount": 99.99}``).
    ``owner``: the authenticated subject it belongs to; ``None`` means the customer ``user_id`` itself."""

    order_id: int
    user_id: int
    items: tuple[OrderItem, ...]
    amount: Decimal
    at: datetime
    currency: str = "USD"
    owner: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkOrderPaid:
    """Record the captured payment (sent by the fulfilment saga)."""

    order_id: int
    payment_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipOrder:
    """Record the shipment (sent by the fulfilment saga)."""

    order_id: int
    tracking_number: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteOrder:
    """Close a shipped order."""

    order_id: int
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelOrder:
    """Cancel an order that has not shipped yet. With ``owner`` set, only if the order belongs to that
    subject: another's order is "not found" (its existence is not disclosed)."""

    order_id: int
    reason: str
    at: datetime
    owner: str | None = None


type OrderCommand = CreateOrder | MarkOrderPaid | ShipOrder | CompleteOrder | CancelOrder
