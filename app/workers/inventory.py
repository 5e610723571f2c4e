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
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from app.domain.inventory import (
    RESERVATION,
    STOCK,
    CommitItems,
    ReleaseItems,
    ReservedItem,
    ReserveItems,
    SetStock,
    plan,
)
from app.domain.inventory.events import ReservationEvent, StockEvent
from app.domain.inventory.state import Reservation, StockState
from app.eventstore.envelope import Metadata, utcnow
from app.eventstore.ports import EventStore
from app.eventstore.snapshots import SnapshotStore
from app.service.handler import CommandHandler, RetryPolicy, Stale
from app.settings import Settings
from app.workers.base import WorkerHandler, refused
from app.workers.commands import Commit, Item, Release, Reserve, WorkerCommand


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


def inventory_command(
    cmd: WorkerCommand, at: datetime, default_stock: int
) -> ReserveItems | ReleaseItems | CommitItems:
    """The inventory plan's command for a worker command (pure)."""
    match cmd:
        case Reserve():
            return ReserveItems(
                order_id=cmd.order_id,
                items=_items(cmd.items),
                command_id=cmd.command_id,
                at=at,
                default_stock=default_stock,
            )
        case Release():
            return ReleaseItems(
                order_id=cmd.order_id, command_id=cmd.command_id, at=at, items=_items(cmd.items)
            )
        case Commit():
            return CommitItems(
                order_id=cmd.order_id, command_id=cmd.command_id, at=at, items=_items(cmd.items)
            )
        case _:
            raise refused("inventory", cmd)


def _items(items: tuple[Item, ...]) -> tuple[ReservedItem, ...]:
    return tuple(ReservedItem(product_id=i.product_id, quantity=i.quantity) for i in items)


class InventoryWorker:
    def __init__(self, store: EventStore, snapshots: SnapshotStore | None, settings: Settings) -> None:
        self._stock: CommandHandler[SetStock, StockEvent, StockState] = CommandHandler(
            store, STOCK, snapshots=snapshots, snapshot_every=settings.snapshot_every, cache_size=20_000
        )
        self._reservations: CommandHandler[Any, ReservationEvent, Reservation] = CommandHandler(
            store, RESERVATION, cache_size=20_000
        )
        self._default = settings.default_stock
        self._locks = _Locks()
        self._retry = RetryPolicy()

    async def handle(self, cmd: WorkerCommand, meta: Metadata) -> None:
        command = inventory_command(cmd, utcnow(), self._default)
        products = sorted({i.product_id for i in command.items})
        if not products:  # a release/commit sent before commands carried the order's items
            reservation = (await self._reservations.load(cmd.order_id)).state
            products = sorted(i.product_id for i in reservation.items)

        async def attempt(fresh: bool) -> None:
            async with self._locks.hold(products):
                if not await self._once(command, meta, products):
                    raise Stale  # an outcome was recorded first: plan the give-back on fresh reads

        await self._retry.run(attempt, self._reservations.stream(cmd.order_id), fresh=True)

    async def _once(
        self, command: ReserveItems | ReleaseItems | CommitItems, meta: Metadata, products: list[int]
    ) -> bool:
        """One plan, stored; ``False`` when the command needs another plan (after an outcome that ends
        the reservation, the give-back is planned on products read after that outcome was stored)."""
        # The products are read BEFORE the reservation: a hold is only added by a plan that read the
        # reservation undecided, and such a plan ends with the conditional append of the reservation's
        # outcome — if the reservation was decided meanwhile, that append fails and the next plan gives
        # the hold back.
        loaded = dict(
            zip(products, await asyncio.gather(*(self._stock.load(p) for p in products)), strict=True)
        )
        reservation = await self._reservations.load(command.order_id)
        decided = plan(command, reservation.state, {p: s.state for p, s in loaded.items()})
        if not decided.outcome_first:
            for pid in sorted(decided.stock):
                await self._stock.append(pid, decided.stock[pid], loaded[pid], meta, cause=command.command_id)
        if decided.reservation:
            await self._reservations.append(
                command.order_id, decided.reservation, reservation, meta, cause=command.command_id
            )
        return not decided.outcome_first


def inventory_handler(
    store: EventStore, snapshots: SnapshotStore | None, settings: Settings
) -> WorkerHandler:
    return InventoryWorker(store, snapshots, settings).handle
