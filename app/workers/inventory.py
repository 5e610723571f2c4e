"""The inventory worker: ``reserve`` / ``release`` / ``commit`` commands for an order's products.

One command touches the order's reservation aggregate and every product of the order; ``plan`` (pure)
decides all of it and ``append_multi`` stores it as ONE atomic batch with each stream's expected
sequence — all products reserved or none, and a concurrent change to any of them makes the whole
batch retry from a fresh load. Per-product locks (taken in product order) keep conflicts between
orders of this replica rare. Products never set start with ``EDA_DEFAULT_STOCK`` units.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from app.domain.inventory import (
    RESERVATION,
    STOCK,
    CommitItems,
    ReleaseItems,
    ReservedItem,
    ReserveItems,
    plan,
)
from app.eventstore.envelope import Metadata, utcnow
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.ports import AppendRequest, ConcurrencyError
from app.eventstore.snapshots import SnapshotStore
from app.messaging import PermanentError, WorkerCommand
from app.service import Loaded, Repository
from app.settings import Settings
from app.statecache import StateCache
from app.workers.base import CONFLICT_RETRIES, CommandHandler, event_ids


class _Locks:
    """In-process locks per product, acquired in ascending product id (no deadlocks)."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, product_ids: Iterable[int]) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for pid in sorted(set(product_ids)):
                await stack.enter_async_context(self._locks.setdefault(pid, asyncio.Lock()))
            yield


class InventoryWorker:
    def __init__(self, store: JetStreamEventStore, snapshots: SnapshotStore, settings: Settings) -> None:
        self._store = store
        self._stock: Repository[Any, Any, Any] = Repository(
            store, STOCK, snapshots, snapshot_every=settings.snapshot_every
        )
        self._reservations: Repository[Any, Any, Any] = Repository(store, RESERVATION)
        self._stock_cache = StateCache(store, self._stock)
        self._reservation_cache = StateCache(store, self._reservations)
        self._every = settings.snapshot_every
        self._default = settings.default_stock
        self._locks = _Locks()

    def _command(self, cmd: WorkerCommand) -> ReserveItems | ReleaseItems | CommitItems:
        at = utcnow()
        if cmd.kind == "reserve":
            items = tuple(ReservedItem(product_id=i.product_id, quantity=i.quantity) for i in cmd.items)
            return ReserveItems(
                order_id=cmd.order_id,
                items=items,
                command_id=cmd.command_id,
                at=at,
                default_stock=self._default,
            )
        if cmd.kind == "release":
            return ReleaseItems(order_id=cmd.order_id, command_id=cmd.command_id, at=at)
        if cmd.kind == "commit":
            return CommitItems(order_id=cmd.order_id, command_id=cmd.command_id, at=at)
        raise PermanentError(f"inventory worker cannot {cmd.kind!r}")

    async def handle(self, cmd: WorkerCommand, meta: Metadata) -> None:
        for attempt in range(CONFLICT_RETRIES):
            reservation = await self._reservation_cache.load(cmd.order_id)
            products = [i.product_id for i in cmd.items] or [i.product_id for i in reservation.state.items]
            async with self._locks.hold(products):
                try:
                    await self._once(cmd, meta, reservation, products)
                    return
                except ConcurrencyError:
                    pass
            await asyncio.sleep(0.005 * (attempt + 1))
        raise ConcurrencyError(
            self._reservations.stream(cmd.order_id), reservation.position, "too many conflicts"
        )

    async def _once(
        self, cmd: WorkerCommand, meta: Metadata, reservation: Loaded[Any], products: list[int]
    ) -> None:
        loaded = dict(
            zip(products, await asyncio.gather(*(self._stock_cache.load(p) for p in products)), strict=True)
        )
        decided = plan(self._command(cmd), reservation.state, {p: s.state for p, s in loaded.items()})
        if not decided.reservation:
            return  # already done: a redelivered or duplicated command
        res_stream = self._reservations.stream(cmd.order_id)
        requests = [
            AppendRequest(
                res_stream, event_ids(cmd.command_id, res_stream, decided.reservation), reservation.position
            )
        ]
        for pid, events in decided.stock.items():
            stream = self._stock.stream(pid)
            requests.append(
                AppendRequest(stream, event_ids(cmd.command_id, stream, events), loaded[pid].position)
            )
        results = await self._store.append_multi(requests, meta)
        self._reservation_cache.appended(
            cmd.order_id, RESERVATION.fold(decided.reservation, reservation.state), results[0].position
        )
        for pid, result in zip(decided.stock, results[1:], strict=True):
            self._stock_cache.appended(
                pid, STOCK.fold(decided.stock[pid], loaded[pid].state), result.position
            )
        for req, result in zip(requests, results, strict=True):
            if req.stream.aggregate_type == STOCK.aggregate_type and (
                result.position.version // self._every > req.expected.version // self._every
            ):
                with contextlib.suppress(Exception):
                    await self._stock.snapshot(req.stream.aggregate_id)


def inventory_handler(
    store: JetStreamEventStore, snapshots: SnapshotStore, settings: Settings
) -> CommandHandler:
    return InventoryWorker(store, snapshots, settings).handle
