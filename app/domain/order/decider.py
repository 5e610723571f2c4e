"""The Order decider: ``decide(command, state) -> events`` and ``evolve(state, event) -> state``.

Repeating a command that already took effect returns no events (idempotent): creating the same order
twice, cancelling a cancelled order, paying a paid order with the same payment id.
"""

from __future__ import annotations

import dataclasses
import re

from app.domain.common import (
    AlreadyExists,
    Decider,
    InvalidTransition,
    InvalidValue,
    NotFound,
    cannot_apply,
    money,
    positive_int,
)
from app.domain.order.commands import (
    CancelOrder,
    CompleteOrder,
    CreateOrder,
    MarkOrderPaid,
    OrderCommand,
    ShipOrder,
)
from app.domain.order.events import (
    ORDER_EVENTS,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderEvent,
    OrderItem,
    OrderPaid,
    OrderShipped,
)
from app.domain.order.state import INITIAL, NoOrder, Order, OrderState, OrderStatus

_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_ITEMS = 100
MAX_TEXT = 500
MAX_OWNER = 255


def _validate_create(cmd: CreateOrder) -> OrderCreated:
    positive_int(cmd.order_id, field="order_id")
    positive_int(cmd.user_id, field="user_id")
    if len(cmd.items) > MAX_ITEMS:
        raise InvalidValue(f"an order has at most {MAX_ITEMS} items")
    for i, item in enumerate(cmd.items):
        positive_int(item.product_id, field=f"items[{i}].product_id")
        positive_int(item.quantity, field=f"items[{i}].quantity")
    if len({item.product_id for item in cmd.items}) != len(cmd.items):
        raise InvalidValue("each product may appear only once in items")
    if not _CURRENCY.match(cmd.currency):
        raise InvalidValue(f"currency must be an ISO 4217 code like 'USD', got {cmd.currency!r}")
    owner = str(cmd.user_id) if cmd.owner is None else cmd.owner
    if not owner or len(owner) > MAX_OWNER:
        raise InvalidValue(f"owner must be 1..{MAX_OWNER} characters")
    return OrderCreated(
        order_id=cmd.order_id,
        user_id=cmd.user_id,
        items=cmd.items,
        amount=money(cmd.amount),
        currency=cmd.currency,
        at=cmd.at,
        owner=owner,
    )


def _text(value: str, field: str) -> str:
    if not value or len(value) > MAX_TEXT:
        raise InvalidValue(f"{field} must be 1..{MAX_TEXT} characters")
    return value


def _existing(state: OrderState, order_id: int, owner: str | None = None) -> Order:
    match state:
        case Order() if owner is None or state.owner == owner:
            return state
        case Order():  # another subject's order: the same answer as a missing one (no existence leak)
            raise NotFound(f"order {order_id} does not exist")
        case NoOrder():
            raise NotFound(f"order {order_id} does not exist")
        case _:
            raise TypeError(f"unknown order state {state!r}")


def _same_order(order: Order, created: OrderCreated) -> bool:
    return (order.user_id, order.items, order.amount, order.currency, order.owner) == (
        created.user_id,
        created.items,
        created.amount,
        created.currency,
        created.owner,
    )


def _repeated(order: Order, *, done: bool, verb: str) -> list[OrderEvent]:
    """A transition ``order``'s status does not allow: no events if it already took effect (``done``: the
    command is repeated, which is idempotent), else refused, naming the status."""
    if done:
        return []
    raise InvalidTransition(f"order {order.order_id} is {order.status}, it cannot be {verb}")


def decide(command: OrderCommand, state: OrderState) -> list[OrderEvent]:
    """Decide which events ``command`` causes in ``state``; raise a ``DomainError`` if it may not."""
    match command:
        case CreateOrder():
            created = _validate_create(command)
            if isinstance(state, Order):
                if _same_order(state, created):
                    return []
                raise AlreadyExists(f"order {command.order_id} already exists with other data")
            return [created]
        case MarkOrderPaid():
            _text(command.payment_id, "payment_id")
            order = _existing(state, command.order_id)
            if order.status is OrderStatus.CREATED:
                return [
                    OrderPaid(
                        order_id=order.order_id,
                        payment_id=command.payment_id,
                        amount=order.amount,
                        at=command.at,
                        user_id=order.user_id,
                    )
                ]
            return _repeated(order, done=order.payment_id == command.payment_id, verb="paid")
        case ShipOrder():
            _text(command.tracking_number, "tracking_number")
            order = _existing(state, command.order_id)
            if order.status is OrderStatus.PAID:
                return [
                    OrderShipped(
                        order_id=order.order_id, tracking_number=command.tracking_number, at=command.at
                    )
                ]
            return _repeated(order, done=order.tracking_number == command.tracking_number, verb="shipped")
        case CompleteOrder():
            order = _existing(state, command.order_id)
            if order.status is OrderStatus.SHIPPED:
                return [OrderCompleted(order_id=order.order_id, at=command.at)]
            return _repeated(order, done=order.status is OrderStatus.COMPLETED, verb="completed")
        case CancelOrder():
            _text(command.reason, "reason")
            order = _existing(state, command.order_id, command.owner)
            if order.status in (OrderStatus.CREATED, OrderStatus.PAID):
                return [OrderCancelled(order_id=order.order_id, reason=command.reason, at=command.at)]
            return _repeated(order, done=order.status is OrderStatus.CANCELLED, verb="cancelled")
        case _:
            raise TypeError(f"unknown order command {command!r}")


def _set(order: Order, event: OrderEvent, **changes: object) -> Order:
    return dataclasses.replace(order, updated_at=event.at, **changes)  # type: ignore[arg-type]


def evolve(state: OrderState, event: OrderEvent) -> OrderState:
    """Apply one event to the state (total: never raises for events ``decide`` can emit)."""
    match event, state:
        case OrderCreated(), _:
            return Order(
                order_id=event.order_id,
                user_id=event.user_id,
                items=event.items,
                amount=event.amount,
                currency=event.currency,
                status=OrderStatus.CREATED,
                created_at=event.at,
                updated_at=event.at,
                owner=event.owner,
            )
        case OrderPaid(), Order():
            return _set(state, event, status=OrderStatus.PAID, payment_id=event.payment_id)
        case OrderShipped(), Order():
            return _set(state, event, status=OrderStatus.SHIPPED, tracking_number=event.tracking_number)
        case OrderCompleted(), Order():
            return _set(state, event, status=OrderStatus.COMPLETED)
        case OrderCancelled(), Order():
            return _set(state, event, status=OrderStatus.CANCELLED, cancel_reason=event.reason)
        case _:
            raise cannot_apply(event, state)


ORDER: Decider[OrderCommand, OrderEvent, OrderState] = Decider(
    aggregate_type="order",
    decide=decide,
    evolve=evolve,
    initial=INITIAL,
    event_types=ORDER_EVENTS,
    state_types=(NoOrder, Order),
    snapshot_schema=2,  # 2: Order.owner (a v1 snapshot would lack it and hide an order from its owner)
)

__all__ = ["ORDER", "OrderItem", "decide", "evolve"]
