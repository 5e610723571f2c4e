"""Events of the inventory: per-product stock (``inventory``) and per-order reservations (``reservation``).

A reservation spans several products, so the worker appends each product's stock event and the order's
reservation outcome in ONE atomic batch; the saga listens only to the reservation aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservedItem:
    """One product line of a reservation."""

    product_id: int
    quantity: int


# -- per product (stream events.inventory.<product_id>) -------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StockSet:
    """The on-hand stock of a product was set (``PUT /api/v1/inventory/{id}``) or initialised to the
    default stock on first use (``initial`` is then true)."""

    TYPE: ClassVar[str] = "StockSet"
    VERSION: ClassVar[int] = 1
    product_id: int
    stock: int
    at: datetime
    initial: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StockReserved:
    """Units were put aside for an order (available stock goes down)."""

    TYPE: ClassVar[str] = "StockReserved"
    VERSION: ClassVar[int] = 1
    product_id: int
    order_id: int
    quantity: int
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StockReleased:
    """An order's reserved units went back to available stock (compensation)."""

    TYPE: ClassVar[str] = "StockReleased"
    VERSION: ClassVar[int] = 1
    product_id: int
    order_id: int
    quantity: int
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StockCommitted:
    """An order's reserved units left the warehouse (order completed): on-hand and reserved go down."""

    TYPE: ClassVar[str] = "StockCommitted"
    VERSION: ClassVar[int] = 1
    product_id: int
    order_id: int
    quantity: int
    command_id: str
    at: datetime


type StockEvent = StockSet | StockReserved | StockReleased | StockCommitted

STOCK_EVENTS: tuple[type[StockEvent], ...] = (StockSet, StockReserved, StockReleased, StockCommitted)


# -- per order (stream events.reservation.<order_id>) ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationConfirmed:
    """Every item of the order was reserved (all or nothing)."""

    TYPE: ClassVar[str] = "ReservationConfirmed"
    VERSION: ClassVar[int] = 1
    order_id: int
    items: tuple[ReservedItem, ...]
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationRejected:
    """Nothing was reserved: at least one product lacked stock (``short`` lists which)."""

    TYPE: ClassVar[str] = "ReservationRejected"
    VERSION: ClassVar[int] = 1
    order_id: int
    reason: str
    short: tuple[ReservedItem, ...]
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationReleaseStarted:
    """The order's reservation is being given back: from now on it can never be made, and the units
    still held for it go back to stock; ``ReservationReleased`` follows once they are back."""

    TYPE: ClassVar[str] = "ReservationReleaseStarted"
    VERSION: ClassVar[int] = 1
    order_id: int
    items: tuple[ReservedItem, ...]
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationReleased:
    """The order's reservation was given back — every unit held for it is back in stock — or, if none
    was made yet, can no longer be made."""

    TYPE: ClassVar[str] = "ReservationReleased"
    VERSION: ClassVar[int] = 1
    order_id: int
    items: tuple[ReservedItem, ...]
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReservationCommitted:
    """The order completed; its reserved units were taken out of stock."""

    TYPE: ClassVar[str] = "ReservationCommitted"
    VERSION: ClassVar[int] = 1
    order_id: int
    items: tuple[ReservedItem, ...]
    command_id: str
    at: datetime


type ReservationEvent = (
    ReservationConfirmed
    | ReservationRejected
    | ReservationReleaseStarted
    | ReservationReleased
    | ReservationCommitted
)

RESERVATION_EVENTS: tuple[type[ReservationEvent], ...] = (
    ReservationConfirmed,
    ReservationRejected,
    ReservationReleaseStarted,
    ReservationReleased,
    ReservationCommitted,
)
