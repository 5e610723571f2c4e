"""The inventory deciders: ``STOCK`` (one product) and ``RESERVATION`` (one order's reservation), and
``plan`` — the pure all-or-nothing decision across an order's products that the worker appends in one
atomic batch.

Idempotency is by order: a product holds at most one reservation per order; releasing or committing an
order that holds nothing changes nothing; a released order can never reserve again (so a reserve
command that arrives after its timeout's compensation has no effect). Stock is never negative:
``available = stock - reserved >= 0`` always.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
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
    """What one reservation command does: the order's reservation events and each product's events."""

    reservation: list[ReservationEvent] = field(default_factory=list)
    stock: dict[int, list[StockEvent]] = field(default_factory=dict)


def _validate(items: tuple[ReservedItem, ...]) -> None:
    if not items:
        raise InvalidValue("a reservation needs at least one item")
    for item in items:
        positive_int(item.product_id, field="product_id")
        positive_int(item.quantity, field="quantity")
    if len({i.product_id for i in items}) != len(items):
        raise InvalidValue("each product may appear only once")


def _reserve(cmd: ReserveItems, res: Reservation, stocks: Mapping[int, StockState]) -> Plan:
    _validate(cmd.items)
    if res.status is not ReservationStatus.NONE:
        return Plan()  # decided before (reserved, rejected, or released first): never twice
    short = []
    for item in cmd.items:
        stock = current(stocks.get(item.product_id, STOCK_INITIAL), item.product_id, cmd.default_stock)
        if stock.available < item.quantity:
            short.append(ReservedItem(product_id=item.product_id, quantity=item.quantity))
    if short:
        rejected = ReservationRejected(
            order_id=cmd.order_id,
            reason="insufficient stock",
            short=tuple(short),
            command_id=cmd.command_id,
            at=cmd.at,
        )
        return Plan(reservation=[rejected])
    per_product: dict[int, list[StockEvent]] = {}
    for item in cmd.items:
        state = stocks.get(item.product_id, STOCK_INITIAL)
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


def _finish(cmd: ReleaseItems | CommitItems, res: Reservation, stocks: Mapping[int, StockState]) -> Plan:
    release = isinstance(cmd, ReleaseItems)
    if res.status in (ReservationStatus.RELEASED, ReservationStatus.COMMITTED):
        if release == (res.status is ReservationStatus.RELEASED):
            return Plan()  # already done
        raise InvalidTransition(f"order {cmd.order_id}'s reservation is {res.status}")
    if not release and res.status is not ReservationStatus.RESERVED:
        raise InvalidTransition(f"order {cmd.order_id} has no reservation to commit ({res.status})")
    items = res.items if res.status is ReservationStatus.RESERVED else ()
    per_product: dict[int, list[StockEvent]] = {}
    for item in items:
        state = stocks.get(item.product_id, STOCK_INITIAL)
        held = current(state, item.product_id, 0).held_for(cmd.order_id)
        if held <= 0:
            continue  # this product already gave it back (cannot happen in one batch, but stay total)
        kind = StockReleased if release else StockCommitted
        per_product[item.product_id] = [
            kind(
                product_id=item.product_id,
                order_id=cmd.order_id,
                quantity=held,
                command_id=cmd.command_id,
                at=cmd.at,
            )
        ]
    done_kind = ReservationReleased if release else ReservationCommitted
    done = done_kind(order_id=cmd.order_id, items=items, command_id=cmd.command_id, at=cmd.at)
    return Plan(reservation=[done], stock=per_product)


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
        case ReleaseItems() | CommitItems():
            return _finish(command, reservation, stocks)
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
