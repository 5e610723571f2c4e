"""The inventory deciders: ``STOCK`` (one product) and ``RESERVATION`` (one order's reservation), and
``plan`` — the pure all-or-nothing decision across an order's products, which the worker stores as
single-stream appends in the order ``Plan`` explains.

Idempotency is by order: a product holds at most one reservation per order; releasing or committing an
order that holds nothing changes nothing; a released order can never reserve again (so a reserve
command that arrives after its timeout's compensation has no effect). Stock is never negative:
``available = stock - reserved >= 0`` always.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app.domain.common import Decider, InvalidTransition, InvalidValue, positive_int
from app.domain.inventory.commands import CommitItems, InventoryCommand, ReleaseItems, ReserveItems, SetStock
from app.domain.inventory.events import (
    RESERVATION_EVENTS,
    STOCK_EVENTS,
    ReservationCommitted,
    ReservationConfirmed,
    ReservationEvent,
    ReservationRejected,
    ReservationReleased,
    ReservationReleaseStarted,
    ReservedItem,
    StockCommitted,
    StockEvent,
    StockReleased,
    StockReserved,
    StockSet,
)
from app.domain.inventory.state import (
    RESERVATION_INITIAL,
    STOCK_INITIAL,
    Hold,
    NoStock,
    Reservation,
    ReservationStatus,
    Stock,
    StockState,
)

MAX_STOCK = 1_000_000_000


def current(state: StockState, product_id: int, default_stock: int) -> Stock:
    """The product's stock, a never-set product counting as ``default_stock`` units."""
    match state:
        case Stock():
            return state
        case NoStock():
            return Stock(product_id=product_id, stock=default_stock)
        case _:
            raise TypeError(f"unknown stock state {state!r}")


def decide_stock(command: SetStock, state: StockState) -> list[StockEvent]:
    """``PUT /inventory/{id}``: set on-hand stock; never below the units reserved for open orders."""
    positive_int(command.product_id, field="product_id")
    if isinstance(command.stock, bool) or not 0 <= command.stock <= MAX_STOCK:
        raise InvalidValue(f"stock must be an integer 0..{MAX_STOCK}, got {command.stock!r}")
    stock = current(state, command.product_id, 0)
    if command.stock < stock.reserved:
        raise InvalidTransition(f"{stock.reserved} units are reserved; stock cannot go below that")
    if isinstance(state, Stock) and state.stock == command.stock:
        return []
    return [StockSet(product_id=command.product_id, stock=command.stock, at=command.at)]


def evolve_stock(state: StockState, event: StockEvent) -> StockState:
    match event:
        case StockSet():
            holds = state.holds if isinstance(state, Stock) else ()
            return Stock(product_id=event.product_id, stock=event.stock, holds=holds)
        case StockReserved():
            stock = current(state, event.product_id, 0)
            hold = Hold(order_id=event.order_id, quantity=event.quantity)
            return dataclasses.replace(stock, holds=(*stock.holds, hold))
        case StockReleased():
            stock = current(state, event.product_id, 0)
            return dataclasses.replace(stock, holds=_without(stock.holds, event.order_id))
        case StockCommitted():
            stock = current(state, event.product_id, 0)
            return Stock(
                product_id=stock.product_id,
                stock=stock.stock - event.quantity,
                holds=_without(stock.holds, event.order_id),
            )
        case _:
            raise TypeError(f"unknown stock event {event!r}")


def _without(holds: tuple[Hold, ...], order_id: int) -> tuple[Hold, ...]:
    return tuple(h for h in holds if h.order_id != order_id)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one reservation command does: each product's events and the order's reservation events.

    The worker stores them as single-stream appends, each at the expected position it was planned on
    (products read before the reservation), and on a conflict anywhere reads again and plans again.
    One rule makes every interleaving of concurrent or cut-short commands safe: units are only HELD by
    a plan that read the reservation undecided, and that plan stores the holds first and the
    ``ReservationConfirmed`` last (conditional on the reservation being still undecided); units are
    only GIVEN BACK once the reservation is decided against them (``ReservationRejected``,
    ``ReservationReleaseStarted``): such an outcome is stored alone (``outcome_first``) and the worker
    plans again on fresh reads, which yields the give-back. So a stored confirmation always finds every
    hold in place, and a hold added by an attempt that lost the race (or crashed) is given back by that
    attempt's next plan or its redelivery. A release ends with ``ReservationReleased`` stored after
    the give-back, so whoever sees it (the saga) sees the units back in stock. A commit takes the held
    units out of stock first and records the outcome last; a hold found after that belongs to a stale
    duplicate and is given back. Applied one after the other until a plan is not ``outcome_first``
    (the pure simulations), plans are the same decisions without interleavings."""

    reservation: list[ReservationEvent] = field(default_factory=list)
    stock: dict[int, list[StockEvent]] = field(default_factory=dict)
    outcome_first: bool = False


def _validate(items: tuple[ReservedItem, ...]) -> None:
    if not items:
        raise InvalidValue("a reservation needs at least one item")
    for item in items:
        positive_int(item.product_id, field="product_id")
        positive_int(item.quantity, field="quantity")
    if len({i.product_id for i in items}) != len(items):
        raise InvalidValue("each product may appear only once")


def _sweep(
    cmd: ReserveItems | ReleaseItems | CommitItems,
    products: Iterable[int],
    stocks: Mapping[int, StockState],
    *,
    commit: bool = False,
) -> dict[int, list[StockEvent]]:
    """Give back (or take out of stock) whatever ``products`` still hold for the order."""
    per_product: dict[int, list[StockEvent]] = {}
    for pid in sorted(set(products)):
        held = current(stocks.get(pid, STOCK_INITIAL), pid, 0).held_for(cmd.order_id)
        if held > 0:
            kind = StockCommitted if commit else StockReleased
            per_product[pid] = [
                kind(
                    product_id=pid,
                    order_id=cmd.order_id,
                    quantity=held,
                    command_id=cmd.command_id,
                    at=cmd.at,
                )
            ]
    return per_product


def _reserve(cmd: ReserveItems, res: Reservation, stocks: Mapping[int, StockState]) -> Plan:
    _validate(cmd.items)
    products = [i.product_id for i in cmd.items]
    if res.status is ReservationStatus.RESERVED:
        return Plan()  # decided before: never twice
    if res.status is not ReservationStatus.NONE:
        return Plan(stock=_sweep(cmd, products, stocks))  # ended: holds of a lost attempt go back
    short = []
    for item in cmd.items:
        stock = current(stocks.get(item.product_id, STOCK_INITIAL), item.product_id, cmd.default_stock)
        if stock.held_for(cmd.order_id) == 0 and stock.available < item.quantity:
            short.append(ReservedItem(product_id=item.product_id, quantity=item.quantity))
    if short:
        rejected = ReservationRejected(
            order_id=cmd.order_id,
            reason="insufficient stock",
            short=tuple(short),
            command_id=cmd.command_id,
            at=cmd.at,
        )
        return Plan(reservation=[rejected], outcome_first=True)  # then the next plan gives back
    per_product: dict[int, list[StockEvent]] = {}
    for item in sorted(cmd.items, key=lambda i: i.product_id):
        state = stocks.get(item.product_id, STOCK_INITIAL)
        if current(state, item.product_id, 0).held_for(cmd.order_id) > 0:
            continue  # held by an earlier attempt of this reservation
        events: list[StockEvent] = []
        if isinstance(state, NoStock):
            events.append(
                StockSet(product_id=item.product_id, stock=cmd.default_stock, at=cmd.at, initial=True)
            )
        events.append(
            StockReserved(
                product_id=item.product_id,
                order_id=cmd.order_id,
                quantity=item.quantity,
                command_id=cmd.command_id,
                at=cmd.at,
            )
        )
        per_product[item.product_id] = events
    confirmed = ReservationConfirmed(
        order_id=cmd.order_id, items=cmd.items, command_id=cmd.command_id, at=cmd.at
    )
    return Plan(reservation=[confirmed], stock=per_product)


def _release(cmd: ReleaseItems, res: Reservation, stocks: Mapping[int, StockState]) -> Plan:
    products = [i.product_id for i in (*res.items, *cmd.items)]
    match res.status:
        case ReservationStatus.COMMITTED:
            raise InvalidTransition(f"order {cmd.order_id}'s reservation is {res.status}")
        case ReservationStatus.RELEASED:
            return Plan(stock=_sweep(cmd, products, stocks))  # done before; what an attempt left goes back
        case ReservationStatus.RELEASING:  # give everything back, then say so
            done = ReservationReleased(
                order_id=cmd.order_id, items=res.items, command_id=cmd.command_id, at=cmd.at
            )
            return Plan(reservation=[done], stock=_sweep(cmd, products, stocks))
        case _:  # none, rejected or reserved: no reservation can be made any more; then give back
            items = res.items if res.status is ReservationStatus.RESERVED else ()
            started = ReservationReleaseStarted(
                order_id=cmd.order_id, items=items, command_id=cmd.command_id, at=cmd.at
            )
            return Plan(reservation=[started], outcome_first=True)


def _commit(cmd: CommitItems, res: Reservation, stocks: Mapping[int, StockState]) -> Plan:
    products = [i.product_id for i in (*res.items, *cmd.items)]
    if res.status is ReservationStatus.COMMITTED:
        return Plan(stock=_sweep(cmd, products, stocks))  # committed: a hold now is a stale duplicate's
    if res.status is not ReservationStatus.RESERVED:
        raise InvalidTransition(f"order {cmd.order_id} has no reservation to commit ({res.status})")
    done = ReservationCommitted(order_id=cmd.order_id, items=res.items, command_id=cmd.command_id, at=cmd.at)
    return Plan(reservation=[done], stock=_sweep(cmd, products, stocks, commit=True))


def plan(
    command: ReserveItems | ReleaseItems | CommitItems,
    reservation: Reservation,
    stocks: Mapping[int, StockState],
) -> Plan:
    """Decide a reservation command across the order's products (``stocks``: their current states)."""
    positive_int(command.order_id, field="order_id")
    match command:
        case ReserveItems():
            return _reserve(command, reservation, stocks)
        case ReleaseItems():
            return _release(command, reservation, stocks)
        case CommitItems():
            return _commit(command, reservation, stocks)
        case _:
            raise TypeError(f"unknown reservation command {command!r}")


def decide_reservation(
    command: ReserveItems | ReleaseItems | CommitItems, state: Reservation
) -> list[ReservationEvent]:
    """The reservation-level outcome alone, every product assumed never set (tests and tooling; the
    worker uses ``plan`` with the products' real states)."""
    return plan(command, state, {}).reservation


def evolve_reservation(state: Reservation, event: ReservationEvent) -> Reservation:
    match event:
        case ReservationConfirmed():
            return Reservation(status=ReservationStatus.RESERVED, items=event.items)
        case ReservationRejected():
            return Reservation(status=ReservationStatus.REJECTED)
        case ReservationReleaseStarted():
            return Reservation(status=ReservationStatus.RELEASING, items=event.items)
        case ReservationReleased():
            return Reservation(status=ReservationStatus.RELEASED, items=event.items)
        case ReservationCommitted():
            return Reservation(status=ReservationStatus.COMMITTED, items=event.items)
        case _:
            raise TypeError(f"unknown reservation event {event!r}")


STOCK: Decider[SetStock, StockEvent, StockState] = Decider(
    aggregate_type="inventory",
    decide=decide_stock,
    evolve=evolve_stock,
    initial=STOCK_INITIAL,
    event_types=STOCK_EVENTS,
    state_types=(NoStock, Stock),
)

RESERVATION: Decider[ReserveItems | ReleaseItems | CommitItems, ReservationEvent, Reservation] = Decider(
    aggregate_type="reservation",
    decide=decide_reservation,
    evolve=evolve_reservation,
    initial=RESERVATION_INITIAL,
    event_types=RESERVATION_EVENTS,
    state_types=(Reservation,),
)

__all__ = ["RESERVATION", "STOCK", "InventoryCommand", "Plan", "current", "plan"]
