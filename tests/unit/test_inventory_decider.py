"""Properties of the inventory deciders: stock never negative, all-or-nothing reservations, a
command (or order) never applies twice, replay rebuilds the state, invalid commands emit nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.common import DomainError, InvalidValue
from app.domain.inventory import (
    RESERVATION,
    STOCK,
    CommitItems,
    NoStock,
    Plan,
    ReleaseItems,
    Reservation,
    ReservationStatus,
    ReservedItem,
    ReserveItems,
    SetStock,
    Stock,
    StockState,
    plan,
)

T = datetime(2026, 1, 1, tzinfo=UTC)

items_st = st.dictionaries(st.integers(1, 4), st.integers(1, 6), min_size=1, max_size=4).map(
    lambda d: tuple(ReservedItem(product_id=p, quantity=q) for p, q in d.items())
)
command_st = st.one_of(
    st.builds(lambda p, s: SetStock(product_id=p, stock=s, at=T), st.integers(1, 4), st.integers(-2, 12)),
    st.builds(
        lambda o, i, c, d: ReserveItems(order_id=o, items=i, command_id=f"r{c}", at=T, default_stock=d),
        st.integers(1, 4),
        items_st,
        st.integers(0, 3),
        st.sampled_from([0, 5]),
    ),
    st.builds(
        lambda o, c: ReleaseItems(order_id=o, command_id=f"x{c}", at=T), st.integers(1, 4), st.integers(0, 3)
    ),
    st.builds(
        lambda o, c: CommitItems(order_id=o, command_id=f"c{c}", at=T), st.integers(1, 4), st.integers(0, 3)
    ),
)


def _run(
    cmd: ReserveItems | ReleaseItems | CommitItems, res: Reservation, stocks: dict[int, StockState]
) -> list[Plan]:
    """The plans one command makes, in order (as the worker: after an outcome stored first, the next
    plan is made on the states it left)."""
    plans = []
    stocks = dict(stocks)
    while True:
        p = plan(cmd, res, stocks)
        plans.append(p)
        res = RESERVATION.fold(p.reservation, res)
        for pid, events in p.stock.items():
            stocks[pid] = STOCK.fold(events, stocks.get(pid, NoStock()))
        if not p.outcome_first:
            return plans


@settings(max_examples=300, deadline=None)
@given(st.lists(command_st, max_size=40), st.data())
def test_random_commands_keep_every_invariant(commands: list[object], data: st.DataObject) -> None:
    stocks: dict[int, StockState] = {}
    reservations: dict[int, Reservation] = {}
    logs: dict[str, list[object]] = {}
    applied: list[tuple[str, int]] = []
    for cmd in commands:
        repeat = data.draw(st.booleans())
        for _ in range(2 if repeat else 1):
            try:
                if isinstance(cmd, SetStock):
                    events = STOCK.decide(cmd, stocks.get(cmd.product_id, NoStock()))
                    for e in events:
                        stocks[cmd.product_id] = STOCK.evolve(stocks.get(cmd.product_id, NoStock()), e)
                        logs.setdefault(f"p{cmd.product_id}", []).append(e)
                    continue
                assert isinstance(cmd, ReserveItems | ReleaseItems | CommitItems)
                plans = _run(cmd, reservations.get(cmd.order_id, Reservation()), stocks)
            except DomainError:
                continue
            for p in plans:
                for e in p.reservation:
                    reservations[cmd.order_id] = RESERVATION.evolve(
                        reservations.get(cmd.order_id, Reservation()), e
                    )
                    logs.setdefault(f"o{cmd.order_id}", []).append(e)
                for pid, events in p.stock.items():
                    for e in events:
                        stocks[pid] = STOCK.evolve(stocks.get(pid, NoStock()), e)
                        logs.setdefault(f"p{pid}", []).append(e)
                        if type(e).__name__ != "StockSet":
                            applied.append((type(e).__name__, cmd.order_id * 100 + pid))
    for pid, state in stocks.items():
        assert isinstance(state, Stock)
        assert state.stock >= 0
        assert 0 <= state.reserved <= state.stock
        assert STOCK.fold(logs[f"p{pid}"]) == state  # replay
    for oid, res in reservations.items():
        assert RESERVATION.fold(logs[f"o{oid}"]) == res
    # an order reserves / releases / commits each product at most once, whatever the duplicates
    assert len(applied) == len(set(applied))


def test_all_or_nothing() -> None:
    stocks: dict[int, StockState] = {1: Stock(product_id=1, stock=5), 2: Stock(product_id=2, stock=1)}
    items = (ReservedItem(product_id=1, quantity=2), ReservedItem(product_id=2, quantity=3))
    p = plan(ReserveItems(order_id=1, items=items, command_id="c", at=T), Reservation(), stocks)
    assert p.stock == {}
    assert [type(e).__name__ for e in p.reservation] == ["ReservationRejected"]


def test_release_twice_gives_stock_back_once() -> None:
    stocks: dict[int, StockState] = {1: Stock(product_id=1, stock=5)}
    res = Reservation()
    p = plan(
        ReserveItems(order_id=1, items=(ReservedItem(product_id=1, quantity=2),), command_id="a", at=T),
        res,
        stocks,
    )
    res = RESERVATION.fold(p.reservation, res)
    stocks[1] = STOCK.fold(p.stock[1], stocks[1])
    assert isinstance(stocks[1], Stock)
    assert stocks[1].available == 3
    for cid in ("r1", "r2"):
        for p in _run(ReleaseItems(order_id=1, command_id=cid, at=T), res, stocks):
            res = RESERVATION.fold(p.reservation, res)
            for pid, events in p.stock.items():
                stocks[pid] = STOCK.fold(events, stocks[pid])
        assert res.status is ReservationStatus.RELEASED
        assert isinstance(stocks[1], Stock)
        assert stocks[1].available == 5  # back after the first release already
    assert isinstance(stocks[1], Stock)
    assert stocks[1].available == 5


def test_release_before_reserve_forbids_the_late_reserve() -> None:
    res = Reservation()
    for p in _run(ReleaseItems(order_id=1, command_id="x", at=T), res, {}):
        res = RESERVATION.fold(p.reservation, res)
    assert res.status is ReservationStatus.RELEASED
    late = plan(
        ReserveItems(
            order_id=1, items=(ReservedItem(product_id=1, quantity=1),), command_id="r", at=T, default_stock=9
        ),
        res,
        {},
    )
    assert late.reservation == []
    assert late.stock == {}


@pytest.mark.parametrize("stock", [-1, True, 10**10])
def test_invalid_stock_is_rejected(stock: int) -> None:
    with pytest.raises(InvalidValue):
        STOCK.decide(SetStock(product_id=1, stock=stock, at=T), NoStock())


def test_stock_cannot_go_below_reserved() -> None:
    state = Stock(product_id=1, stock=5)
    p = plan(
        ReserveItems(order_id=1, items=(ReservedItem(product_id=1, quantity=4),), command_id="a", at=T),
        Reservation(),
        {1: state},
    )
    state = STOCK.fold(p.stock[1], state)  # type: ignore[assignment]
    with pytest.raises(DomainError):
        STOCK.decide(SetStock(product_id=1, stock=3, at=T), state)
    assert STOCK.decide(SetStock(product_id=1, stock=4, at=T), state)
