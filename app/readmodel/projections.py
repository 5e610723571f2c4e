"""The order projection: events of ``events.order.>`` → tables ``orders`` and ``order_events``.

Importable API (used by the live projector and by the rebuild engine), every function taking the
read-model ``schema`` so it works on the live schema and on a shadow one:

- Pure fold: ``evolve_view(view, event) -> view`` / ``fold_views(views, events)`` apply recorded events to
  ``OrderView`` values (the domain state + version + last sequence) in memory; ``order_row(view)`` and
  ``timeline_row(event)`` give tuples in ``ORDER_COLUMNS`` / ``TIMELINE_COLUMNS`` order, ready for
  ``copy_records_to_table``. A rebuild folds the whole stream in memory, COPYs the rows, then
  ``set_checkpoint``s the last sequence it read.
- ``apply_batch(conn, schema, events)`` applies a batch in ONE transaction (a savepoint if the caller
  already opened one): it locks the checkpoint row, skips events at or below the checkpoint, upserts
  the touched orders set-based (``unnest``), inserts their timeline rows, advances the checkpoint and
  ``NOTIFY``s ``eda_orders`` with ``"<order_id>:<version>,..."``. Returns the number of events applied.
- ``apply_batch_fast(...)``: the same effect in ONE guarded autocommit statement for the leader that
  keeps the rows it wrote and its checkpoint in memory (1 round trip per batch instead of 5); it
  writes nothing and says so when the stored checkpoint is not the one it expects.

Invariants: ``orders.version`` equals the number of timeline rows of the order; the timeline primary key
``(order_id, version)`` makes any double application fail instead of corrupting the model.
Event types this build does not know still get a timeline row and bump the version (state unchanged).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from app.domain.order import (
    INITIAL,
    ORDER,
    Order,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderItem,
    OrderPaid,
    OrderShipped,
    OrderStatus,
)
from app.eventstore.envelope import RecordedEvent
from app.readmodel.db import quote_ident

log = logging.getLogger(__name__)

PROJECTION = "orders"
SUBJECTS = "events.order.>"
NOTIFY_CHANNEL = "eda_orders"
_NOTIFY_MAX = 7000  # PostgreSQL caps a NOTIFY payload at 8000 bytes

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
_ORDER_TYPES = (
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
_TIMELINE_TYPES = ("bigint", "integer", "text", "timestamptz", "uuid", "bigint", "text", "text")


class CheckpointRewound(RuntimeError):
    """The stored checkpoint is behind what this projector committed (a rebuild swapped the schema)."""

    def __init__(self, stored: int) -> None:
        super().__init__(f"checkpoint rewound to {stored}")
        self.stored = stored


@dataclass(frozen=True, slots=True)
class OrderView:
    """One row of ``orders``: the domain state plus its version and the last applied sequence."""

    state: Order
    version: int
    last_sequence: int


def order_id_of(event: RecordedEvent) -> int | None:
    """The order id of an order event (``None`` for ids that are not integers: never projected)."""
    try:
        return int(event.envelope.aggregate_id)
    except ValueError:
        return None


def evolve_view(view: OrderView | None, event: RecordedEvent) -> OrderView | None:
    """Apply one recorded event; events at or below the view's version are ignored (already in)."""
    if view is not None and event.version <= view.version:
        return view
    if event.event is None:  # a type this build does not know: count it, keep the state
        if view is None:
            return None
        return OrderView(view.state, event.version, event.sequence)
    try:
        state = ORDER.evolve(view.state if view is not None else INITIAL, event.event)
    except TypeError:  # cannot happen for a well-formed stream; never block the projection on it
        log.error(
            "order %s: %s v%d does not apply, skipped", event.stream_id, event.envelope.type, event.version
        )
        return view
    if not isinstance(state, Order):
        return view
    return OrderView(state, event.version, event.sequence)


def fold_views(views: dict[int, OrderView], events: Iterable[RecordedEvent]) -> list[RecordedEvent]:
    """Fold ``events`` into ``views`` in place; returns the events that took effect (for the timeline)."""
    applied = []
    for event in events:
        order_id = order_id_of(event)
        if order_id is None:
            continue
        before = views.get(order_id)
        after = evolve_view(before, event)
        if after is None or after is before:
            continue
        views[order_id] = after
        applied.append(event)
    return applied


# indexes into a BulkFold accumulator: the Order fields in declaration order, version, sequence, owner
_UPDATED, _PAYMENT, _TRACKING, _CANCEL, _STATUS, _VERSION, _SEQUENCE, _OWNER = 7, 8, 9, 10, 5, 11, 12, 13


class BulkFold:
    """``fold_views`` for a rebuild's bulk phase: the same results, but each order is a mutable list
    updated in place (no ``Order`` copy per event). The five order events take a direct path; anything
    else (unknown types, an event before ``OrderCreated``, ...) goes through ``evolve_view`` itself."""

    def __init__(self) -> None:
        self._accs: dict[int, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._accs)

    def fold(self, events: Iterable[RecordedEvent]) -> list[RecordedEvent]:
        """Fold ``events``; returns those that took effect (for the timeline), like ``fold_views``."""
        accs, applied = self._accs, []
        for event in events:
            env = event.envelope
            try:
                order_id = int(env.aggregate_id)
            except ValueError:
                continue
            acc = accs.get(order_id)
            version = env.aggregate_version
            if acc is not None and version <= acc[_VERSION]:
                continue
            ev = event.event
            kind = type(ev)
            if kind is OrderCreated:
                accs[order_id] = [
                    ev.order_id, ev.user_id, ev.items, ev.amount, ev.currency, OrderStatus.CREATED,
                    ev.at, ev.at, None, None, None, version, event.sequence, ev.owner,
                ]  # fmt: skip
            elif acc is None or not self._direct(acc, kind, ev):
                before = None if acc is None else _view_of(acc)
                after = evolve_view(before, event)
                if after is None or after is before:
                    continue
                accs[order_id] = _acc_of(after)
                applied.append(event)
                continue
            else:
                acc[_VERSION] = version
                acc[_SEQUENCE] = event.sequence
            applied.append(event)
        return applied

    @staticmethod
    def _direct(acc: list[Any], kind: type[Any], ev: Any) -> bool:
        """Apply a state transition of an existing order in place; ``False`` if not one of those."""
        if kind is OrderPaid:
            acc[_STATUS], acc[_PAYMENT] = OrderStatus.PAID, ev.payment_id
        elif kind is OrderShipped:
            acc[_STATUS], acc[_TRACKING] = OrderStatus.SHIPPED, ev.tracking_number
        elif kind is OrderCompleted:
            acc[_STATUS] = OrderStatus.COMPLETED
        elif kind is OrderCancelled:
            acc[_STATUS], acc[_CANCEL] = OrderStatus.CANCELLED, ev.reason
        else:
            return False
        acc[_UPDATED] = ev.at
        return True

    def views(self) -> dict[int, OrderView]:
        """The folded orders as ``OrderView`` values (what ``fold_views`` would hold)."""
        return {order_id: _view_of(acc) for order_id, acc in self._accs.items()}


def _view_of(acc: list[Any]) -> OrderView:
    state = Order(
        order_id=acc[0],
        user_id=acc[1],
        items=acc[2],
        amount=acc[3],
        currency=acc[4],
        status=acc[5],
        created_at=acc[6],
        updated_at=acc[7],
        payment_id=acc[8],
        tracking_number=acc[9],
        cancel_reason=acc[10],
        owner=acc[_OWNER],
    )
    return OrderView(state, acc[_VERSION], acc[_SEQUENCE])


def _acc_of(view: OrderView) -> list[Any]:
    s = view.state
    return [
        s.order_id, s.user_id, s.items, s.amount, s.currency, s.status, s.created_at, s.updated_at,
        s.payment_id, s.tracking_number, s.cancel_reason, view.version, view.last_sequence, s.owner,
    ]  # fmt: skip


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


def view_from_record(rec: asyncpg.Record) -> OrderView:
    """An ``orders`` row back into an ``OrderView``."""
    state = Order(
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
    return OrderView(state, rec["version"], rec["last_sequence"])


def _unnest(types: Sequence[str], start: int = 1) -> str:
    return ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=start))


def _upsert_sql(schema: str, where: str = "") -> str:
    cols = ", ".join(ORDER_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_COLUMNS[1:])
    return (
        f"INSERT INTO {quote_ident(schema)}.orders ({cols}) "
        f"SELECT u.order_id, u.user_id, u.items::jsonb, {', '.join('u.' + c for c in ORDER_COLUMNS[3:])} "
        f"FROM unnest({_unnest(_ORDER_TYPES)}) AS u({cols}) {where}"
        f"ON CONFLICT (order_id) DO UPDATE SET {updates}"
    )


def _timeline_sql(schema: str, start: int = 1, where: str = "") -> str:
    return (
        f"INSERT INTO {quote_ident(schema)}.order_events ({', '.join(TIMELINE_COLUMNS)}) "
        f"SELECT * FROM unnest({_unnest(_TIMELINE_TYPES, start)}) AS x {where}"
    )


@functools.cache
def _write_sql(schema: str, notify: bool) -> str:
    """Rows, timeline, checkpoint and NOTIFY of a batch as ONE statement (one round trip instead of four;
    data-modifying ``WITH`` parts always run, whether the main query reads them or not)."""
    n, t = len(ORDER_COLUMNS), len(TIMELINE_COLUMNS)
    projection, sequence, payloads = n + t + 1, n + t + 2, n + t + 3
    checkpoint = (
        f"INSERT INTO {quote_ident(schema)}.projection_checkpoints (projection, sequence, updated_at) "
        f"VALUES (${projection}, ${sequence}, now()) ON CONFLICT (projection) "
        "DO UPDATE SET sequence = EXCLUDED.sequence, updated_at = now()"
    )
    main = (
        f"SELECT pg_notify('{NOTIFY_CHANNEL}', p) FROM unnest(${payloads}::text[]) AS p"
        if notify
        else f"SELECT cardinality(${payloads}::text[])"
    )
    return (
        f"WITH o AS ({_upsert_sql(schema)} RETURNING 1), "
        f"t AS ({_timeline_sql(schema, n + 1)} RETURNING 1), "
        f"c AS ({checkpoint} RETURNING 1) {main}"
    )


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


async def read_checkpoint(
    conn: asyncpg.Connection, schema: str, projection: str = PROJECTION, *, lock: bool = False
) -> int:
    """The projection's checkpoint (0 if none); ``lock`` takes the row lock for this transaction."""
    table = f"{quote_ident(schema)}.projection_checkpoints"
    suffix = " FOR UPDATE" if lock else ""
    value = await conn.fetchval(f"SELECT sequence FROM {table} WHERE projection = $1{suffix}", projection)
    if value is None and lock:
        await conn.execute(
            f"INSERT INTO {table} (projection, sequence) VALUES ($1, 0) ON CONFLICT DO NOTHING", projection
        )
        value = await conn.fetchval(f"SELECT sequence FROM {table} WHERE projection = $1{suffix}", projection)
    return int(value or 0)


async def set_checkpoint(
    conn: asyncpg.Connection, schema: str, sequence: int, projection: str = PROJECTION
) -> None:
    """Store the checkpoint (upsert)."""
    await conn.execute(
        f"INSERT INTO {quote_ident(schema)}.projection_checkpoints (projection, sequence, updated_at) "
        "VALUES ($1, $2, now()) ON CONFLICT (projection) "
        "DO UPDATE SET sequence = EXCLUDED.sequence, updated_at = now()",
        projection,
        sequence,
    )


async def load_views(conn: asyncpg.Connection, schema: str, order_ids: list[int]) -> dict[int, OrderView]:
    """The current rows of ``order_ids`` as views."""
    if not order_ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {', '.join(ORDER_COLUMNS)} FROM {quote_ident(schema)}.orders "
        "WHERE order_id = ANY($1::bigint[])",
        order_ids,
    )
    return {r["order_id"]: view_from_record(r) for r in rows}


def _payloads(views: Iterable[OrderView]) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for view in views:
        part = f"{view.state.order_id}:{view.version}"
        if size + len(part) + 1 > _NOTIFY_MAX and current:
            chunks.append(",".join(current))
            current, size = [], 0
        current.append(part)
        size += len(part) + 1
    if current:
        chunks.append(",".join(current))
    return chunks


def _fresh(events: Sequence[RecordedEvent], checkpoint: int) -> tuple[list[RecordedEvent], dict[int, int]]:
    """The events after ``checkpoint`` in stream order, and each order's first version among them."""
    fresh = sorted((e for e in events if e.sequence > checkpoint), key=lambda e: e.sequence)
    first_version: dict[int, int] = {}
    for event in fresh:
        order_id = order_id_of(event)
        if order_id is not None:
            first_version.setdefault(order_id, event.version)
    return fresh, first_version


def _changed(views: dict[int, OrderView], applied: Iterable[RecordedEvent]) -> list[OrderView]:
    touched = {order_id_of(e) for e in applied}
    return [views[oid] for oid in touched if oid is not None]


def _write_args(changed: Sequence[OrderView], applied: Sequence[RecordedEvent]) -> list[list[Any]]:
    """The ``unnest`` arrays of the order rows, then of the timeline rows (``_write_sql`` order)."""
    columns = _columns([order_row(v) for v in changed], len(ORDER_COLUMNS))
    columns[2] = [json.dumps(items) for items in columns[2]]
    return columns + _columns([timeline_row(e) for e in applied], len(TIMELINE_COLUMNS))


async def apply_batch(
    conn: asyncpg.Connection,
    schema: str,
    events: Sequence[RecordedEvent],
    *,
    projection: str = PROJECTION,
    notify: bool = True,
    expect_checkpoint: int | None = None,
    views_out: dict[int, OrderView] | None = None,
) -> int:
    """Apply ``events`` (stream order) and the checkpoint in one transaction; returns how many applied.
    ``expect_checkpoint`` (the last checkpoint this caller committed) raises ``CheckpointRewound`` if
    the stored one is behind it. ``views_out`` receives the rows written (a caller's cache)."""
    if not events:
        return 0
    async with conn.transaction():
        checkpoint = await read_checkpoint(conn, schema, projection, lock=True)
        if expect_checkpoint is not None and checkpoint < expect_checkpoint:
            raise CheckpointRewound(checkpoint)
        fresh, first_version = _fresh(events, checkpoint)
        if not fresh:
            return 0
        views = await load_views(conn, schema, [oid for oid, v in first_version.items() if v != 1])
        applied = fold_views(views, fresh)
        changed = _changed(views, applied)
        if not changed:
            await set_checkpoint(conn, schema, fresh[-1].sequence, projection)
            return len(applied)
        last, payloads = fresh[-1].sequence, _payloads(changed)
        await conn.execute(
            _write_sql(schema, notify), *_write_args(changed, applied), projection, last, payloads
        )
        if views_out is not None:
            views_out.update((view.state.order_id, view) for view in changed)
        return len(applied)


@functools.cache
def _guarded_write_sql(schema: str, rows: bool) -> str:
    """``apply_batch_fast``'s ONE autocommit statement: the checkpoint moves from the expected value
    (on the expected table) to the batch's last sequence, and only if it did are the rows and the
    timeline written and the NOTIFY sent; column ``moved`` says whether it did. The checkpoint table
    comes first, so its lock is taken before the other tables' names are resolved (a rebuild's swap
    holds that lock while it renames the schemas)."""
    n, t = len(ORDER_COLUMNS), len(TIMELINE_COLUMNS)
    base = n + t if rows else 0
    projection, last, expected, table, payloads = (base + i for i in range(1, 6))
    moved = (
        f"UPDATE {quote_ident(schema)}.projection_checkpoints SET sequence = ${last}, updated_at = now() "
        f"WHERE projection = ${projection} AND sequence = ${expected} AND tableoid = ${table}::oid "
        "RETURNING 1"
    )
    if not rows:
        return f"WITH c AS ({moved}) SELECT count(*) AS moved FROM c"
    only_if = "WHERE EXISTS (SELECT 1 FROM c) "
    return (
        f"WITH c AS ({moved}), "
        f"o AS ({_upsert_sql(schema, only_if)} RETURNING 1), "
        f"t AS ({_timeline_sql(schema, n + 1, only_if)} RETURNING 1) "
        f"SELECT (SELECT count(*) FROM c) AS moved, (SELECT count(pg_notify('{NOTIFY_CHANNEL}', p)) "
        f"FROM unnest(${payloads}::text[]) AS p {only_if}) AS notified"
    )


async def checkpoint_table(conn: asyncpg.Connection, schema: str) -> int:
    """The OID of ``schema``'s checkpoint table (it changes when a rebuild swaps schemas)."""
    name = f"{quote_ident(schema)}.projection_checkpoints"
    return int(await conn.fetchval("SELECT to_regclass($1)::oid", name))


async def apply_batch_fast(
    conn: asyncpg.Connection,
    schema: str,
    events: Sequence[RecordedEvent],
    *,
    checkpoint: int,
    table: int,
    views: dict[int, OrderView],
    projection: str = PROJECTION,
) -> int | None:
    """``apply_batch`` for the one leader that wrote the rows it caches: no transaction, no checkpoint
    or row reads — ``views`` holds the rows this caller wrote (others are read), ``checkpoint`` the
    value it committed last, ``table`` the checkpoint table's OID — and ONE guarded statement. Returns
    the number applied, or ``None`` when the stored checkpoint is not ``checkpoint`` on ``table`` any
    more (a rebuild swapped the schema, something else moved it): nothing was written, and the caller
    must drop its cache and use ``apply_batch``. ``views`` gets the rows written."""
    fresh, first_version = _fresh(events, checkpoint)
    if not fresh:
        return 0
    work = {oid: views[oid] for oid in first_version if oid in views}
    missing = [oid for oid, v in first_version.items() if v != 1 and oid not in views]
    if missing:
        work.update(await load_views(conn, schema, missing))
    applied = fold_views(work, fresh)
    changed = _changed(work, applied)
    last = fresh[-1].sequence
    if not changed:
        moved = await conn.fetchval(_guarded_write_sql(schema, False), projection, last, checkpoint, table)
    else:
        moved = await conn.fetchval(
            _guarded_write_sql(schema, True),
            *_write_args(changed, applied),
            projection,
            last,
            checkpoint,
            table,
            _payloads(changed),
        )
    if not moved:
        return None
    for view in changed:
        views.pop(view.state.order_id, None)
        views[view.state.order_id] = view  # most recent last: the caller trims from the front
    return len(applied)
