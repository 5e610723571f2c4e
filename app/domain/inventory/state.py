"""States of the inventory aggregates: closed unions of frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.domain.inventory.events import ReservedItem


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """Units of one product held for one in-flight order."""

    order_id: int
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NoStock:
    """A product whose stock was never set: it starts with the configured default stock."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stock:
    """On-hand units, and the units of it held for in-flight orders (``available = stock - reserved``)."""

    product_id: int
    stock: int
    holds: tuple[Hold, ...] = ()

    @property
    def reserved(self) -> int:
        return sum(h.quantity for h in self.holds)

    @property
    def available(self) -> int:
        return self.stock - self.reserved

    def held_for(self, order_id: int) -> int:
        return next((h.quantity for h in self.holds if h.order_id == order_id), 0)


type StockState = NoStock | Stock

STOCK_INITIAL: StockState = NoStock()


class ReservationStatus(StrEnum):
    NONE = "none"
    RESERVED = "reserved"
    REJECTED = "rejected"
    RELEASING = "releasing"
    RELEASED = "released"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    """One order's reservation: where it stands and which items it holds."""

    status: ReservationStatus = ReservationStatus.NONE
    items: tuple[ReservedItem, ...] = ()


RESERVATION_INITIAL = Reservation()
