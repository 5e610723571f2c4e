"""The order projection's rows: ``orders`` and ``order_events`` columns (and their PostgreSQL types for
``unnest``), an ``OrderView`` as an ``orders`` tuple, a recorded event as an ``order_events`` tuple,
and an ``orders`` record back into a view. Tuples follow the column order, ready for
``copy_records_to_table``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg

from app.domain.order import Order, OrderItem, OrderStatus
from app.eventstore.envelope import RecordedEvent
from app.readmodel.fold import OrderView

ORDER_COLUMNS = (
    "order_id",
    "user_id",
    "items",
    "amount",
    "currency",
    "status",
    "version",
    "created_at",
    "updated_at",
    "payment_id",
    "tracking_number",
    "cancel_reason",
    "last_sequence",
    "owner",
)
ORDER_TYPES = (
    "bigint",
    "bigint",
    "text",  # items travel as JSON text: a jsonb[] of lists would be read as a 2-D array
    "numeric",
    "text",
    "text",
    "integer",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",
    "bigint",
    "text",
)
TIMELINE_COLUMNS = (
    "order_id",
    "version",
    "type",
    "occurred_at",
    "event_id",
    "sequence",
    "correlation_id",
    "causation_id",
)
TIMELINE_TYPES = ("bigint", "integer", "text", "timestamptz", "uuid", "bigint", "text", "text")


def order_row(view: OrderView) -> tuple[Any, ...]:
    """``view`` as a tuple in ``ORDER_COLUMNS`` order."""
    s = view.state
    items = [{"product_id": i.product_id, "quantity": i.quantity} for i in s.items]
    return (
        s.order_id,
        s.user_id,
        items,
        s.amount,
        s.currency,
        str(s.status),
        view.version,
        s.created_at,
        s.updated_at,
        s.payment_id,
        s.tracking_number,
        s.cancel_reason,
        view.last_sequence,
        s.owner,
    )


def timeline_row(event: RecordedEvent) -> tuple[Any, ...]:
    """``event`` as a tuple in ``TIMELINE_COLUMNS`` order."""
    env = event.envelope
    return (
        int(env.aggregate_id),
        env.aggregate_version,
        env.type,
        env.occurred_at,
        env.event_id,
        event.sequence,
        env.correlation_id,
        env.causation_id,
    )


def order_from_record(rec: asyncpg.Record) -> Order:
    """An ``orders`` row's domain state."""
    return Order(
        order_id=rec["order_id"],
        user_id=rec["user_id"],
        items=tuple(OrderItem(product_id=i["product_id"], quantity=i["quantity"]) for i in rec["items"]),
        amount=Decimal(rec["amount"]),
        currency=rec["currency"],
        status=OrderStatus(rec["status"]),
        created_at=rec["created_at"],
        updated_at=rec["updated_at"],
        payment_id=rec["payment_id"],
        tracking_number=rec["tracking_number"],
        cancel_reason=rec["cancel_reason"],
        owner=rec["owner"],
    )


def view_from_record(rec: asyncpg.Record) -> OrderView:
    """An ``orders`` row back into an ``OrderView``."""
    return OrderView(order_from_record(rec), rec["version"], rec["last_sequence"])
