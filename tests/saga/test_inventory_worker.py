"""The inventory worker against a real nats-server: its single-append protocol leaves nothing behind when
a command is cut short between two appends (a crash) or overtaken by its compensation, and two
replicas running the same command at once hold stock once. The model of every interleaving is
tests/unit/test_inventory_protocol.py; this checks the worker really follows it."""

from __future__ import annotations

import asyncio
from typing import Any

from app.domain.inventory import RESERVATION, STOCK, ReservationStatus, Stock, current
from app.domain.inventory.events import StockReserved
from app.eventstore.envelope import NEW, Metadata, utcnow
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.service.handler import derived_ids
from app.service.repository import Repository
from app.settings import Settings
from app.workers.commands import Commit, InventoryCommand, Item, Release, Reserve
from app.workers.inventory import InventoryWorker

META = Metadata(correlation_id="test")
ITEMS = (Item(1, 2), Item(2, 3))


def _cmd(kind: str, order_id: int = 7) -> InventoryCommand:
    command = {"reserve": Reserve, "release": Release, "commit": Commit}[kind]
    return command(command_id=f"{order_id}:{kind}:1", order_id=order_id, items=ITEMS)


async def _state(store: JetStreamEventStore, order_id: int = 7) -> tuple[Any, dict[int, Stock]]:
    """The order's reservation and products 1 and 2 (a never-touched one counts its default stock)."""
    res = await Repository(store, RESERVATION).load(order_id)
    stocks = {p: current((await Repository(store, STOCK).load(p)).state, p, 10) for p in (1, 2)}
    return res.state, stocks


async def _reserve_cut_short(store: JetStreamEventStore) -> None:
    """The reserve's first append (product 1's hold) was stored, then the worker died."""
    stream = Repository(store, STOCK).stream(1)
    held = [StockReserved(product_id=1, order_id=7, quantity=2, command_id="7:reserve:1", at=utcnow())]
    await store.append(stream, derived_ids("7:reserve:1", stream, NEW, held), NEW, META)


async def _cut_short_then(
    store: JetStreamEventStore, snapshots: SnapshotStore, kind: str
) -> tuple[Any, dict[int, Stock]]:
    """A reserve cut short, then ``kind`` handled by a fresh replica; the states after it."""
    await _reserve_cut_short(store)
    await _worker(store, snapshots).handle(_cmd(kind), META)
    return await _state(store)


def _worker(store: JetStreamEventStore, snapshots: SnapshotStore) -> InventoryWorker:
    return InventoryWorker(store, snapshots, Settings(default_stock=10))


async def test_reserve_then_commit_moves_stock_once(
    store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    worker = _worker(store, snapshots)
    await worker.handle(_cmd("reserve"), META)
    await worker.handle(_cmd("reserve"), META)  # redelivered: nothing twice
    res, stocks = await _state(store)
    assert res.status is ReservationStatus.RESERVED
    assert [(s.stock, s.reserved) for s in stocks.values()] == [(10, 2), (10, 3)]
    for _ in range(2):
        await worker.handle(_cmd("commit"), META)
    res, stocks = await _state(store)
    assert res.status is ReservationStatus.COMMITTED
    assert [(s.stock, s.reserved) for s in stocks.values()] == [(8, 0), (7, 0)]


async def test_a_reserve_cut_short_is_given_back_by_its_compensation(
    store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    res, stocks = await _cut_short_then(store, snapshots, "release")
    assert res.status is ReservationStatus.RELEASED
    assert stocks[1].reserved == 0
    # the reserve is delivered again after the release (a fresh replica): it holds nothing
    await _worker(store, snapshots).handle(_cmd("reserve"), META)
    res, stocks = await _state(store)
    assert res.status is ReservationStatus.RELEASED
    assert [s.reserved for s in stocks.values()] == [0, 0]


async def test_a_reserve_cut_short_is_finished_by_its_redelivery(
    store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    res, stocks = await _cut_short_then(store, snapshots, "reserve")
    assert res.status is ReservationStatus.RESERVED
    assert [s.reserved for s in stocks.values()] == [2, 3]  # product 1 not held twice


async def test_replicas_racing_on_one_order_hold_once(
    store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    """Two replicas (separate workers, no shared locks) run the reserve and its release at once, many
    times over; every order ends released with nothing held, whoever won each race."""
    a, b = _worker(store, snapshots), _worker(store, snapshots)
    for order_id in range(1, 31):
        first, second = (a, b) if order_id % 2 else (b, a)
        await asyncio.gather(
            first.handle(_cmd("reserve", order_id), META), second.handle(_cmd("release", order_id), META)
        )
        await second.handle(_cmd("reserve", order_id), META)  # a late duplicate changes nothing
    for order_id in range(1, 31):
        res, _ = await _state(store, order_id)
        assert res.status is ReservationStatus.RELEASED
    _, stocks = await _state(store)
    assert [(s.stock, s.reserved) for s in stocks.values()] == [(10, 0), (10, 0)]


async def test_a_release_says_released_only_once_the_units_are_back(
    store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    """The saga reacts to ``ReservationReleased``: by then every unit must be back in stock."""
    worker = _worker(store, snapshots)
    await worker.handle(_cmd("reserve"), META)
    await worker.handle(_cmd("release"), META)
    outcome = await Repository(store, RESERVATION).history(7)
    assert [e.envelope.type for e in outcome] == [
        "ReservationConfirmed",
        "ReservationReleaseStarted",
        "ReservationReleased",
    ]
    for product in (1, 2):
        history = await Repository(store, STOCK).history(product)
        released = [e for e in history if e.envelope.type == "StockReleased"]
        assert len(released) == 1
        assert outcome[1].sequence < released[0].sequence < outcome[2].sequence
