"""Test/benchmark helpers: append many order events fast, project them live, checksum the read model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from app.domain.order import (
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderItem,
    OrderPaid,
    OrderShipped,
)
from app.eventstore.envelope import NEW, Metadata, NewEvent, StreamId
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.ports import AppendRequest
from app.readmodel import fold
from app.readmodel.apply import apply_batch
from app.readmodel.db import quote_ident
from app.readmodel.rows import ORDER_COLUMNS, order_row
from app.readmodel.sql import read_checkpoint

T0 = datetime(2026, 1, 1, tzinfo=UTC)
META = Metadata(correlation_id="seed")


def order_events(order_id: int) -> list[Any]:
    """Created → paid → shipped → completed (4 events); every 5th order is cancelled after payment (3)."""
    at = T0 + timedelta(seconds=order_id)
    events: list[Any] = [
        OrderCreated(
            order_id=order_id,
            user_id=order_id % 97 + 1,
            items=(OrderItem(product_id=order_id % 13 + 1, quantity=order_id % 3 + 1),),
            amount=Decimal(order_id % 1000) + Decimal("0.99"),
            currency="USD",
            at=at,
            owner=str(order_id % 97 + 1),
        ),
        OrderPaid(order_id=order_id, payment_id=f"p{order_id}", amount=Decimal("1.00"), at=at),
    ]
    if order_id % 5 == 0:
        events.append(OrderCancelled(order_id=order_id, reason="test", at=at + timedelta(seconds=1)))
    else:
        events.append(OrderShipped(order_id=order_id, tracking_number=f"t{order_id}", at=at))
        events.append(OrderCompleted(order_id=order_id, at=at + timedelta(seconds=3)))
    return events


async def seed_orders(
    store: JetStreamEventStore, first_id: int, count: int, *, per_batch: int = 250, concurrency: int = 4
) -> int:
    """Append ``count`` orders in atomic multi-stream batches; returns how many events were appended."""
    gate = asyncio.Semaphore(concurrency)

    async def batch(ids: range) -> None:
        async with gate:
            requests = [
                AppendRequest(StreamId("order", str(i)), [NewEvent(event=e) for e in order_events(i)], NEW)
                for i in ids
            ]
            await store.append_multi(requests, META)

    ids = range(first_id, first_id + count)
    await asyncio.gather(*(batch(ids[i : i + per_batch]) for i in range(0, count, per_batch)))
    return sum(len(order_events(i)) for i in ids)


async def project_all(conn: asyncpg.Connection, store: JetStreamEventStore, schema: str) -> int:
    """Bring ``schema`` up to date the way the live projector does (``apply_batch``); returns last seq."""
    last = await read_checkpoint(conn, schema)
    while True:
        events = await store.read_all(last + 1, limit=1000, subjects=fold.SUBJECTS)
        if not events:
            return last
        await apply_batch(conn, schema, events, notify=False)
        last = events[-1].sequence


async def checksum(conn: asyncpg.Connection, schema: str) -> tuple[int, int, str]:
    """(orders, timeline rows, md5 of both tables in key order)."""
    s = quote_ident(schema)
    row = await conn.fetchrow(
        f"SELECT (SELECT count(*) FROM {s}.orders) AS o, (SELECT count(*) FROM {s}.order_events) AS e, "
        f"md5((SELECT coalesce(string_agg(t::text, '|' ORDER BY order_id), '') FROM {s}.orders t) || "
        f"(SELECT coalesce(string_agg(t::text, '|' ORDER BY order_id, version), '') "
        f"FROM {s}.order_events t)) AS h"
    )
    assert row is not None
    return int(row["o"]), int(row["e"]), str(row["h"])


async def folded_rows(store: JetStreamEventStore) -> dict[int, tuple[Any, ...]]:
    """The expected ``orders`` rows: the fold of every stored order event (projection helpers)."""
    views: dict[int, fold.OrderView] = {}
    seq = 1
    while True:
        events = await store.read_all(seq, limit=5000, subjects=fold.SUBJECTS)
        if not events:
            break
        fold.fold_views(views, events)
        seq = events[-1].sequence + 1
    return {oid: order_row(v) for oid, v in views.items()}


async def live_rows(conn: asyncpg.Connection, schema: str) -> dict[int, tuple[Any, ...]]:
    rows = await conn.fetch(f"SELECT {', '.join(ORDER_COLUMNS)} FROM {quote_ident(schema)}.orders")
    return {r["order_id"]: tuple(r.values()) for r in rows}
