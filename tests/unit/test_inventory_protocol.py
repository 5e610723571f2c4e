"""The inventory worker's write protocol under every interleaving: a plan is stored as single-stream
conditional appends (the order ``Plan`` prescribes), a conflict means load and plan again, a worker may
crash between any two appends (its command is then delivered again), duplicates of a command run
concurrently, and a second order competes for the same stock.

This model mirrors ``InventoryWorker.handle``/``_once`` step by step with the real pure ``plan``; a
random scheduler picks which worker makes its next step. Whatever happens: stock is never negative at
any moment; once every command has finished, each order's recorded outcome agrees with the products
(reserved ⇒ every item held, anything else ⇒ nothing held), committed units left stock exactly once,
and no product ever held the same order twice. ``EDA_PROTOCOL_EXAMPLES`` runs more schedules (8,000
passed when the protocol was written; earlier drafts of it failed here within a few hundred)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.common import DomainError
from app.domain.inventory import (
    RESERVATION,
    STOCK,
    CommitItems,
    ReleaseItems,
    Reservation,
    ReservationStatus,
    ReservedItem,
    ReserveItems,
    Stock,
    plan,
)
from app.domain.inventory.events import StockSet

T = datetime(2026, 1, 1, tzinfo=UTC)
type Cmd = ReserveItems | ReleaseItems | CommitItems


@dataclass
class Streams:
    logs: dict[str, list[Any]] = field(default_factory=dict)

    def version(self, key: str) -> int:
        return len(self.logs.get(key, []))

    def reservation(self, order_id: int) -> Reservation:
        return RESERVATION.fold(self.logs.get(f"r{order_id}", []))

    def stock(self, pid: int) -> Any:
        return STOCK.fold(self.logs.get(f"p{pid}", []))

    def append(self, key: str, events: list[Any], expected: int) -> bool:
        if self.version(key) != expected:
            return False  # the store's expected-sequence check
        self.logs.setdefault(key, []).extend(events)
        if key.startswith("p"):
            state = self.stock(int(key[1:]))
            assert isinstance(state, Stock)
            assert state.stock >= 0
            assert 0 <= state.reserved <= state.stock, "stock never negative, holds within stock"
        return True


def worker(streams: Streams, cmd: Cmd) -> Generator[None]:
    """One delivery of ``cmd``: every ``yield`` is a point where others run or this worker dies."""
    products = sorted({i.product_id for i in cmd.items})
    while True:
        versions = {p: streams.version(f"p{p}") for p in products}  # products first, as the worker
        stocks = {p: streams.stock(p) for p in products}
        yield
        res_version = streams.version(f"r{cmd.order_id}")
        res = streams.reservation(cmd.order_id)
        try:
            decided = plan(cmd, res, stocks)
        except DomainError:
            return  # the worker records the failure; nothing stored
        outcome = [(f"r{cmd.order_id}", decided.reservation, res_version)] if decided.reservation else []
        stock = [(f"p{p}", decided.stock[p], versions[p]) for p in sorted(decided.stock)]
        steps = outcome if decided.outcome_first else stock + outcome
        for key, events, expected in steps:
            yield
            if not streams.append(key, events, expected):
                break  # conflict: load and plan again
        else:
            if not decided.outcome_first:
                return  # done; after an outcome stored first, the give-back is planned afresh


@settings(
    max_examples=int(os.environ.get("EDA_PROTOCOL_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    stock=st.lists(st.integers(0, 4), min_size=3, max_size=3),
    items=st.lists(
        st.dictionaries(st.integers(1, 3), st.integers(1, 3), min_size=1, max_size=3), min_size=2, max_size=2
    ),
    data=st.data(),
)
def test_every_interleaving_keeps_outcome_and_stock_consistent(
    stock: list[int], items: list[dict[int, int]], data: st.DataObject
) -> None:
    streams = Streams()
    for pid, units in enumerate(stock, start=1):
        streams.logs[f"p{pid}"] = [StockSet(product_id=pid, stock=units, at=T)]
    orders = {
        oid: tuple(ReservedItem(product_id=p, quantity=q) for p, q in d.items())
        for oid, d in enumerate(items, start=1)
    }
    ending: dict[int, str] = {}  # the compensation or the commit the "saga" sent (never both)
    running: list[tuple[Cmd, Generator[None]]] = []

    def deliver(cmd: Cmd) -> None:
        running.append((cmd, worker(streams, cmd)))

    for oid, its in orders.items():
        deliver(ReserveItems(order_id=oid, items=its, command_id=f"reserve-{oid}", at=T))
    for _ in range(data.draw(st.integers(10, 80))):
        action = data.draw(st.sampled_from(["step", "step", "step", "crash", "duplicate", "end"]))
        if action == "end":
            oid = data.draw(st.sampled_from(sorted(orders)))
            if oid in ending:
                continue
            reserved = streams.reservation(oid).status is ReservationStatus.RESERVED
            kind = data.draw(st.sampled_from(["commit", "release"])) if reserved else "release"
            ending[oid] = kind
            cls = CommitItems if kind == "commit" else ReleaseItems
            deliver(cls(order_id=oid, command_id=f"{kind}-{oid}", at=T, items=orders[oid]))
            continue
        if not running:
            break
        index = data.draw(st.integers(0, len(running) - 1))
        cmd, gen = running[index]
        if action == "duplicate":
            deliver(cmd)  # the same command delivered again while the first is still at work
        elif action == "crash":
            running.pop(index)
            deliver(cmd)  # unacked: delivered again from the start
        elif next(gen, StopIteration) is StopIteration:
            running.pop(index)
    for _, gen in running:  # no more crashes: every delivery runs to its end
        for _ in gen:
            pass

    for oid, its in orders.items():
        res = streams.reservation(oid)
        held = {p: streams.stock(p).held_for(oid) for p in range(1, 4)}
        if res.status is ReservationStatus.RESERVED:
            assert held == {p: dict((i.product_id, i.quantity) for i in its).get(p, 0) for p in held}
        else:
            assert set(held.values()) == {0}, f"order {oid} is {res.status} but holds {held}: {streams.logs}"
        committed = Counter(
            e.product_id
            for p in range(1, 4)
            for e in streams.logs[f"p{p}"]
            if type(e).__name__ == "StockCommitted" and e.order_id == oid
        )
        if res.status is ReservationStatus.COMMITTED:
            assert committed == Counter({i.product_id: 1 for i in its})
        else:
            assert not committed
        holds = Counter(
            e.product_id
            for p in range(1, 4)
            for e in streams.logs[f"p{p}"]
            if type(e).__name__ == "StockReserved" and e.order_id == oid
        )
        assert all(n == 1 for n in holds.values()), "a product held the same order twice"
    for pid in range(1, 4):
        final = streams.stock(pid)
        assert final.stock == stock[pid - 1] - sum(
            e.quantity for e in streams.logs[f"p{pid}"] if type(e).__name__ == "StockCommitted"
        )
