"""The inventory worker: ``reserve`` / ``release`` / ``commit`` commands for an order's products.

One command touches every product of the order and the order's reservation aggregate. ``plan`` (pure)
decides all of it on the current states; the worker stores it as single-stream appends, each at the
expected position it was planned on, in the order ``Plan`` prescribes (holds before a confirmation,
give-backs after a release or rejection), and on a conflict loads again and plans again — so a crash
or a concurrent command between two appends leaves nothing the next plan (the redelivery, or the
compensation) does not finish or give back. All or nothing holds for the outcome; stock is never
negative (each product's append is conditional). Single appends rather than one ADR-50 atomic batch:
on nats-server 2.15 a two-message batch cost ~8x the server CPU of two single publishes and made orders
with items the slowest path of the saga. Per-product locks (taken in product order) keep conflicts
between orders of this replica rare. Products never set start with ``EDA_DEFAULT_STOCK`` units.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from app.domain.inventory import (
    RESERVATION,
    STOCK,
    CommitItems,
    Plan,
    ReleaseItems,
    ReservedItem,
    ReserveItems,
    plan,
)
from app.eventstore.consumer import PermanentError
from app.eventstore.envelope import Metadata, NewEvent, Position, StreamId, utcnow
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.ports import ConcurrencyError
from app.eventstore.snapshots import SnapshotStore
from app.service.repository import Loaded, Repository
from app.service.statecache import StateCache
from app.settings import Settings
from app.workers.base import CONFLICT_RETRIES, CommandHandler, event_ids
from app.workers.commands import WorkerCommand


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
        items = tuple(ReservedItem(product_id=i.product_id, quantity=i.quantity) for i in cmd.items)
        if cmd.kind == "reserve":
            return ReserveItems(
                order_id=cmd.order_id,
                items=items,
                command_id=cmd.command_id,
                at=at,
                default_stock=self._default,
            )
        if cmd.kind == "release":
            return ReleaseItems(order_id=cmd.order_id, command_id=cmd.command_id, at=at, items=items)
        if cmd.kind == "commit":
            return CommitItems(order_id=cmd.order_id, command_id=cmd.command_id, at=at, items=items)
        raise PermanentError(f"inventory worker cannot {cmd.kind!r}")

    async def handle(self, cmd: WorkerCommand, meta: Metadata) -> None:
        products = sorted({i.product_id for i in cmd.items})
        if not products:  # a release/commit sent before commands carried the order's items
            products = sorted(
                i.product_id for i in (await self._reservation_cache.load(cmd.order_id)).state.items
            )
        for attempt in range(CONFLICT_RETRIES):
            async with self._locks.hold(products):
                try:
                    if await self._once(cmd, meta, products):
                        return
                    continue  # an outcome was recorded first: plan the give-back on fresh reads
                except ConcurrencyError:
                    pass
            await asyncio.sleep(0.005 * (attempt + 1))
        raise ConcurrencyError(self._reservations.stream(cmd.order_id), Position(0, 0), "too many conflicts")

    async def _once(self, cmd: WorkerCommand, meta: Metadata, products: list[int]) -> bool:
        """One plan, stored; ``False`` when the command needs another plan (after an outcome that ends
        the reservation, the give-back is planned on products read after that outcome was stored)."""
        # The products are read BEFORE the reservation: a hold is only added by a plan that read the
        # reservation undecided, and such a plan ends with the conditional append of the reservation's
        # outcome — if the reservation was decided meanwhile, that append fails and the next plan gives
        # the hold back.
        loaded = dict(
            zip(products, await asyncio.gather(*(self._stock_cache.load(p) for p in products)), strict=True)
        )
        reservation = await self._reservation_cache.load(cmd.order_id)
        decided = plan(self._command(cmd), reservation.state, {p: s.state for p, s in loaded.items()})
        if decided.outcome_first:
            await self._record_outcome(cmd, meta, reservation, decided)
            return False
        for pid in sorted(decided.stock):
            events = decided.stock[pid]
            stream = self._stock.stream(pid)
            result = await self._store.append(
                stream, _ids(cmd.command_id, stream, events), loaded[pid].position, meta
            )
            self._stock_cache.appended(pid, STOCK.fold(events, loaded[pid].state), result.position)
            if result.position.version // self._every > loaded[pid].position.version // self._every:
                with contextlib.suppress(Exception):
                    await self._stock.snapshot(pid)
        await self._record_outcome(cmd, meta, reservation, decided)
        return True

    async def _record_outcome(
        self, cmd: WorkerCommand, meta: Metadata, reservation: Loaded[Any], decided: Plan
    ) -> None:
        if not decided.reservation:
            return
        stream = self._reservations.stream(cmd.order_id)
        outcome = decided.reservation
        result = await self._store.append(
            stream, _ids(cmd.command_id, stream, outcome), reservation.position, meta
        )
        self._reservation_cache.appended(
            cmd.order_id, RESERVATION.fold(outcome, reservation.state), result.position
        )


def _ids(command_id: str, stream: StreamId, events: Sequence[Any]) -> list[NewEvent]:
    """Deterministic per command, stream and event type: the same command may hold a product and later
    give the hold back (an attempt cut short, then released), and those two must not share an id."""
    return event_ids(f"{command_id}:{type(events[0]).__name__}", stream, events)


def inventory_handler(
    store: JetStreamEventStore, snapshots: SnapshotStore, settings: Settings
) -> CommandHandler:
    return InventoryWorker(store, snapshots, settings).handle
