"""Queries of the order read model (the API's read path), and the same shapes built from the event store.

``OrderRecord`` is what ``GET /api/v1/orders/{id}`` shows, whether it comes from PostgreSQL
(``get_order``), or from a fold of stored events (``record_from_events``: read-your-writes fallback and
``?as_of=``). ``list_orders`` is keyset-paginated by ``order_id`` ascending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from app.domain.order import ORDER, Order
from app.eventstore.envelope import RecordedEvent
from app.readmodel.db import quote_ident
from app.readmodel.rows import order_from_record

_FIELDS = (
    "order_id, user_id, items, amount, currency, status, version, created_at, updated_at, "
    "payment_id, tracking_number, cancel_reason, owner"
)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of an order's timeline."""

    type: str
    timestamp: datetime
    version: int


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as the API shows it; ``events`` is ``None`` in list results."""

    order_id: int
    user_id: int
    items: list[dict[str, int]]
    amount: Decimal
    currency: str
    status: str
    version: int
    created_at: datetime
    updated_at: datetime
    payment_id: str | None = None
    tracking_number: str | None = None
    cancel_reason: str | None = None
    events: list[TimelineEntry] | None = None
    owner: str = ""


def _of_order(order: Order, version: int, events: list[TimelineEntry] | None) -> OrderRecord:
    return OrderRecord(
        order_id=order.order_id,
        user_id=order.user_id,
        items=[{"product_id": i.product_id, "quantity": i.quantity} for i in order.items],
        amount=order.amount,
        currency=order.currency,
        status=str(order.status),
        version=version,
        created_at=order.created_at,
        updated_at=order.updated_at,
        payment_id=order.payment_id,
        tracking_number=order.tracking_number,
        cancel_reason=order.cancel_reason,
        events=events,
        owner=order.owner,
    )


def _record(row: asyncpg.Record, events: list[TimelineEntry] | None) -> OrderRecord:
    return _of_order(order_from_record(row), row["version"], events)


async def get_order(
    conn: asyncpg.Pool | asyncpg.Connection, schema: str, order_id: int
) -> OrderRecord | None:
    """One order with its timeline, or ``None`` if the read model does not have it (yet)."""
    s = quote_ident(schema)
    row = await conn.fetchrow(
        f"SELECT {_FIELDS}, t.types, t.times, t.versions FROM {s}.orders o "
        "LEFT JOIN LATERAL (SELECT array_agg(type ORDER BY version) AS types, "
        "array_agg(occurred_at ORDER BY version) AS times, array_agg(version ORDER BY version) AS versions "
        f"FROM {s}.order_events e WHERE e.order_id = o.order_id) t ON true "
        "WHERE o.order_id = $1",
        order_id,
    )
    if row is None:
        return None
    timeline = [
        TimelineEntry(type=t, timestamp=ts, version=v)
        for t, ts, v in zip(row["types"] or [], row["times"] or [], row["versions"] or [], strict=True)
    ]
    return _record(row, timeline)


async def order_owner(conn: asyncpg.Pool | asyncpg.Connection, schema: str, order_id: int) -> str | None:
    """The owner of an order the read model has (``None``: it has not, or not yet)."""
    value = await conn.fetchval(
        f"SELECT owner FROM {quote_ident(schema)}.orders WHERE order_id = $1", order_id
    )
    return None if value is None else str(value)


async def list_orders(
    conn: asyncpg.Pool | asyncpg.Connection,
    schema: str,
    *,
    user_id: int | None = None,
    status: str | None = None,
    after: int = 0,
    limit: int = 50,
    owner: str | None = None,
) -> list[OrderRecord]:
    """Up to ``limit`` orders with ``order_id > after`` (keyset pagination), optionally filtered (by
    ``owner``: the orders one subject may see)."""
    conditions = ["order_id > $1"]
    args: list[Any] = [after]
    if owner is not None:
        args.append(owner)
        conditions.append(f"owner = ${len(args)}")
    if user_id is not None:
        args.append(user_id)
        conditions.append(f"user_id = ${len(args)}")
    if status is not None:
        args.append(status)
        conditions.append(f"status = ${len(args)}")
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {_FIELDS} FROM {quote_ident(schema)}.orders WHERE {' AND '.join(conditions)} "
        f"ORDER BY order_id LIMIT ${len(args)}",
        *args,
    )
    return [_record(r, None) for r in rows]


def record_from_events(events: list[RecordedEvent]) -> OrderRecord | None:
    """The ``OrderRecord`` of the fold of ``events`` (one order's stream, in order); ``None`` if no order."""
    state = ORDER.fold([e.event for e in events if e.event is not None])
    if not isinstance(state, Order) or not events:
        return None
    timeline = [
        TimelineEntry(type=e.envelope.type, timestamp=e.envelope.occurred_at, version=e.version)
        for e in events
    ]
    return _of_order(state, events[-1].version, timeline)
