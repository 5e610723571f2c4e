"""What the saga asks of the Order aggregate: pure ``order_commands(saga, order) -> commands``.

Derived from the saga's state, not from single events, so re-applying after a crash (or out of
order) brings the order to the right status in the right sequence: paid → shipped → completed, or
cancelled. The order aggregate arbitrates races with a user's cancel (optimistic concurrency).
"""

from __future__ import annotations

from datetime import datetime

from app.domain.order.commands import CancelOrder, CompleteOrder, MarkOrderPaid, OrderCommand, ShipOrder
from app.domain.order.state import Order, OrderState, OrderStatus
from app.domain.saga.state import Saga, SagaState, SagaStatus


def order_commands(saga: SagaState, order: OrderState, at: datetime) -> list[OrderCommand]:
    if not isinstance(saga, Saga) or not isinstance(order, Order):
        return []
    status = order.status
    if status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED):
        return []
    oid = saga.order_id
    if saga.status in (SagaStatus.COMPENSATING, SagaStatus.CANCELLED):
        if status in (OrderStatus.CREATED, OrderStatus.PAID):
            return [CancelOrder(order_id=oid, reason=saga.reason or "saga compensated", at=at)]
        return []
    commands: list[OrderCommand] = []
    if saga.payment_id is not None and status is OrderStatus.CREATED:
        commands.append(MarkOrderPaid(order_id=oid, payment_id=saga.payment_id, at=at))
        status = OrderStatus.PAID
    if saga.tracking_number is not None and status is OrderStatus.PAID:
        commands.append(ShipOrder(order_id=oid, tracking_number=saga.tracking_number, at=at))
        status = OrderStatus.SHIPPED
    if saga.tracking_number is not None and status is OrderStatus.SHIPPED:
        commands.append(CompleteOrder(order_id=oid, at=at))
    return commands
