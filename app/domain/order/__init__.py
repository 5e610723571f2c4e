"""The Order aggregate: created → paid → shipped → completed, or cancelled."""

from app.domain.order.commands import (
    CancelOrder,
    CompleteOrder,
    CreateOrder,
    MarkOrderPaid,
    OrderCommand,
    ShipOrder,
)
from app.domain.order.decider import ORDER, decide, evolve
from app.domain.order.events import (
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderEvent,
    OrderItem,
    OrderPaid,
    OrderShipped,
)
from app.domain.order.state import INITIAL, NoOrder, Order, OrderState, OrderStatus

__all__ = [
    "INITIAL",
    "ORDER",
    "CancelOrder",
    "CompleteOrder",
    "CreateOrder",
    "MarkOrderPaid",
    "NoOrder",
    "Order",
    "OrderCancelled",
    "OrderCommand",
    "OrderCompleted",
    "OrderCreated",
    "OrderEvent",
    "OrderItem",
    "OrderPaid",
    "OrderShipped",
    "OrderState",
    "OrderStatus",
    "ShipOrder",
    "decide",
    "evolve",
]
