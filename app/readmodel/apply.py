"""Applying a batch of order events to the read model, exactly once in effect.

- ``apply_batch(conn, schema, events)`` applies a batch in ONE transaction (a savepoint if the caller
  already opened one): it locks the checkpoint row, skips events at or below the checkpoint, upserts
  the touched orders set-based, inserts their timeline rows, advances the checkpoint and ``NOTIFY``s
  ``eda_orders`` with ``"<order_id>:<version>,..."``. Returns the number of events applied.
- ``apply_batch_fast(...)``: the same effect in ONE guarded autocommit statement for the leader that
  keeps the rows it wrote and its checkpoint in memory (1 round trip per batch instead of 5); it
  writes nothing and says so when the stored checkpoint is not the one it expects.

Invariants: ``orders.version`` equals the number of timeline rows of the order; the timeline primary key
``(order_id, version)`` makes any double application fail instead of corrupting the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from app.eventstore.envelope import RecordedEvent
from app.readmodel.fold import PROJECTION, OrderView, fold_views, order_id_of
from app.readmodel.rows import ORDER_COLUMNS, TIMELINE_COLUMNS, order_row, timeline_row
from app.readmodel.sql import guarded_write_sql, load_views, read_checkpoint, set_checkpoint, write_sql

_NOTIFY_MAX = 7000  # PostgreSQL caps a NOTIFY payload at 8000 bytes


class CheckpointRewound(RuntimeError):
    """The stored checkpoint is behind what this projector committed (a rebuild swapped the schema)."""

    def __init__(self, stored: int) -> None:
        super().__init__(f"checkpoint rewound to {stored}")
        self.stored = stored


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]


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
            write_sql(schema, notify), *_write_args(changed, applied), projection, last, payloads
        )
        if views_out is not None:
            views_out.update((view.state.order_id, view) for view in changed)
        return len(applied)


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
        moved = await conn.fetchval(guarded_write_sql(schema, False), projection, last, checkpoint, table)
    else:
        moved = await conn.fetchval(
            guarded_write_sql(schema, True),
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
