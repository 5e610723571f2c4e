"""Order reads of the API: read model first, event store when the model is behind or for ``as_of``.

- ``GET /orders/{id}``: the read model row. If it is missing (just created, projector behind) the order
  is folded from the event store instead, so a GET right after a 201 never says 404.
- ``?min_version=N``: wait (``EDA_MIN_VERSION_WAIT_S``, default 2 s) for the projector's NOTIFY that the
  order reached N (fallback poll every 250 ms); if it has not after the wait, answer from the event
  store, which is never behind. Either way the answer has version ≥ N if the order has reached N.
- ``?as_of=T``: the fold of the events that occurred until T (``Repository.load_as_of``).
The second value returned says where the answer came from: ``read-model`` or ``event-store``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from app.api.access import ensure_visible, not_found, reads_all
from app.api.deps import AppContext
from app.auth.scopes import Principal
from app.domain.order import ORDER, Order
from app.readmodel.queries import OrderRecord, get_order, order_owner, record_from_events

READ_MODEL = "read-model"
EVENT_STORE = "event-store"
POLL_S = 0.25


async def _from_store(ctx: AppContext, order_id: int, as_of: datetime | None = None) -> OrderRecord | None:
    events = await ctx.repository(ORDER).history(order_id)
    if as_of is not None:
        events = [e for e in events if e.envelope.occurred_at <= as_of]
    return record_from_events(events)


async def _wait_for_version(ctx: AppContext, order_id: int, version: int) -> OrderRecord | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.min_version_wait_s
    async with ctx.notifications.watch(order_id, version) as reached:
        while True:
            reached.clear()  # before the query: a NOTIFY racing with it is not lost
            record = await get_order(ctx.pool, ctx.schema, order_id)
            remaining = deadline - loop.time()
            if (record is not None and record.version >= version) or remaining <= 0:
                return record
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reached.wait(), min(remaining, POLL_S))


async def owner_of(ctx: AppContext, order_id: int) -> str | None:
    """Who an order belongs to (read model, else the event store; ``None``: no such order)."""
    owner = await order_owner(ctx.pool, ctx.schema, order_id)
    if owner is not None:
        return owner
    state = (await ctx.repository(ORDER).load(order_id)).state
    return state.owner if isinstance(state, Order) else None


async def ensure_may_read(ctx: AppContext, principal: Principal, order_id: int) -> None:
    """404 unless the order exists and ``principal`` may see it (no lookup for ``orders:read:all``)."""
    if not reads_all(principal):
        ensure_visible(principal, order_id, await owner_of(ctx, order_id))


async def read_order(
    ctx: AppContext,
    principal: Principal,
    order_id: int,
    *,
    min_version: int | None,
    as_of: datetime | None,
) -> tuple[OrderRecord, str]:
    """The order (404 if it does not exist, did not exist yet at ``as_of``, or is not the caller's)."""
    record, source = await _read_order(ctx, order_id, min_version=min_version, as_of=as_of)
    ensure_visible(principal, order_id, record.owner)
    return record, source


async def _read_order(
    ctx: AppContext, order_id: int, *, min_version: int | None, as_of: datetime | None
) -> tuple[OrderRecord, str]:
    if as_of is not None:
        record = await _from_store(ctx, order_id, as_of)
        if record is None:
            raise not_found(order_id)
        return record, EVENT_STORE
    if min_version is None:
        record = await get_order(ctx.pool, ctx.schema, order_id)
    else:
        record = await _wait_for_version(ctx, order_id, min_version)
    if record is not None and (min_version is None or record.version >= min_version):
        return record, READ_MODEL
    ctx.metrics.read_fallbacks.labels("missing" if record is None else "behind").inc()
    fresh = await _from_store(ctx, order_id)
    if fresh is None:
        raise not_found(order_id)
    return fresh, EVENT_STORE
