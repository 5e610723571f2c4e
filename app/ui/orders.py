"""What the console shows about orders: the searchable list (read model) and one order's full story
(read-model row + the stored events of the order and of its saga, straight from the event store).

JSON-ready dicts only; the router just serialises them. The list supports keyset pagination
(``order_id`` descending, newest first) and read-your-events: ``min_sequence`` waits, bounded, until the
projection's checkpoint has reached the stream sequence the browser was told about over SSE.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from app.eventstore.envelope import RecordedEvent, StreamId
from app.eventstore.ports import EventStore
from app.readmodel.db import quote_ident
from app.ui.saga import saga_timeline

STATUSES = ("created", "paid", "shipped", "completed", "cancelled")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
MIN_SEARCH = 3
# What ``q`` searches, exactly the expression of the trigram index of migration 0020 (the planner uses the
# index only for this very expression): payment id, tracking number and cancel reason, newline-separated.
SEARCH_TEXT = (
    "(coalesce(payment_id, '') || E'\\n' || coalesce(tracking_number, '') || E'\\n' "
    "|| coalesce(cancel_reason, ''))"
)
_LIST_COLUMNS = (
    "order_id, user_id, items, amount, currency, status, version, created_at, updated_at, "
    "payment_id, tracking_number, cancel_reason, last_sequence"
)


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """Filters of the orders list; ``q`` matches an order/user id or payment/tracking/cancel text."""

    q: str = ""
    status: str | None = None
    user_id: int | None = None
    before: int | None = None
    limit: int = 25


def trace_id(traceparent: str | None) -> str | None:
    """The W3C trace id inside a ``traceparent`` header value (``None`` if absent or malformed)."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _order_json(rec: asyncpg.Record) -> dict[str, Any]:
    return {key: _json(rec[key]) for key in rec.keys()}  # noqa: SIM118 - asyncpg.Record is not a dict


def _where(query: OrderQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if query.status:
        clauses.append(f"status = {arg(query.status)}")
    if query.user_id is not None:
        clauses.append(f"user_id = {arg(query.user_id)}")
    if query.before is not None:
        clauses.append(f"order_id < {arg(query.before)}")
    text = query.q.strip()
    if is_id_search(text):
        number = arg(int(text))
        clauses.append(f"(order_id = {number} OR user_id = {number})")
    elif text:
        pattern = arg("%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        clauses.append(f"{SEARCH_TEXT} ILIKE {pattern}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def is_id_search(text: str) -> bool:
    """Whether ``q`` names an order or user id (digits) rather than text."""
    return text.isascii() and text.isdigit() and len(text) < 19  # isdigit() alone accepts "²"


def search_problem(q: str) -> str | None:
    """Why ``q`` cannot be searched (``None``: it can): text needs ``MIN_SEARCH`` characters, as the
    trigram index cannot narrow a shorter substring down (it would scan every order)."""
    text = q.strip()
    if text and not is_id_search(text) and len(text) < MIN_SEARCH:
        return f"search text needs at least {MIN_SEARCH} characters (or an order/user id)"
    return None


def list_sql(schema: str, query: OrderQuery) -> tuple[str, list[Any]]:
    """The page's SQL and arguments (one row more than the page: is there a next one?)."""
    where, args = _where(query)
    sql = (
        f"SELECT {_LIST_COLUMNS} FROM {quote_ident(schema)}.orders{where} "
        f"ORDER BY order_id DESC LIMIT {int(query.limit) + 1}"
    )
    return sql, args


async def list_orders(pool: asyncpg.Pool, schema: str, query: OrderQuery) -> dict[str, Any]:
    """One page of orders, newest first, with the cursor of the next page (``None`` on the last)."""
    sql, args = list_sql(schema, query)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if query.q.strip() and not is_id_search(query.q.strip()):
                # planned for THIS pattern: a cached generic plan cannot tell a rare substring (the
                # trigram index) from a common one (walk the newest orders), and walked them all
                await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            rows = await conn.fetch(sql, *args)
    except asyncpg.UndefinedTableError:
        rows = []
    page = [_order_json(r) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return {"items": page, "next_cursor": str(page[-1]["order_id"]) if more and page else None}


async def wait_for_checkpoint(
    pool: asyncpg.Pool, schema: str, sequence: int, *, timeout: float = 2.0, projection: str = "orders"
) -> bool:
    """Wait (bounded) until the projection has applied stream ``sequence``; ``False`` on timeout."""
    sql = f"SELECT sequence FROM {quote_ident(schema)}.projection_checkpoints WHERE projection = $1"
    deadline = time.monotonic() + timeout
    while True:
        try:
            reached = await pool.fetchval(sql, projection)
        except asyncpg.UndefinedTableError:
            reached = None
        if reached is not None and int(reached) >= sequence:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)


def event_json(event: RecordedEvent, jaeger_url: str | None) -> dict[str, Any]:
    """One stored event as the console shows it: metadata, payload, and its Jaeger link."""
    env = event.envelope
    tid = trace_id(env.traceparent)
    return {
        "sequence": event.sequence,
        "event_id": env.event_id,
        "type": env.type,
        "schema_version": env.schema_version,
        "aggregate_type": env.aggregate_type,
        "aggregate_id": env.aggregate_id,
        "version": env.aggregate_version,
        "occurred_at": env.occurred_at.isoformat(),
        "correlation_id": env.correlation_id,
        "causation_id": env.causation_id,
        "trace_id": tid,
        "trace_url": f"{jaeger_url.rstrip('/')}/trace/{tid}" if jaeger_url and tid else None,
        "data": env.data,
    }


async def order_detail(
    pool: asyncpg.Pool, store: EventStore, schema: str, order_id: int, jaeger_url: str | None
) -> dict[str, Any] | None:
    """The order's read-model row, its stored events and its saga's stored events (``None``: unknown)."""
    order_stream = StreamId("order", str(order_id))
    saga_stream = StreamId("saga", str(order_id))
    order_events, saga_events = await asyncio.gather(store.load(order_stream), store.load(saga_stream))
    try:
        row = await pool.fetchrow(
            f"SELECT {_LIST_COLUMNS} FROM {quote_ident(schema)}.orders WHERE order_id = $1", order_id
        )
    except asyncpg.UndefinedTableError:
        row = None
    if row is None and not order_events.events:
        return None
    events = [event_json(e, jaeger_url) for e in order_events.events]
    first_trace = next((e["trace_id"] for e in events if e["trace_id"]), None)
    return {
        "order_id": order_id,
        "order": _order_json(row) if row is not None else None,
        "events": events,
        "saga": saga_timeline(saga_events.events, order_events.events),
        "saga_events": [event_json(e, jaeger_url) for e in saga_events.events],
        "trace_id": first_trace,
        "trace_url": f"{jaeger_url.rstrip('/')}/trace/{first_trace}" if jaeger_url and first_trace else None,
    }
