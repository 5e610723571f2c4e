"""The inventory: per-product stock and per-order all-or-nothing reservations."""

from app.domain.inventory.commands import (
    CommitItems,
    InventoryCommand,
    ReleaseItems,
    ReserveItems,
    SetStock,
)
from app.domain.inventory.decider import RESERVATION, STOCK, Plan, current, plan
from app.domain.inventory.events import (
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
    Hold,
    NoStock,
    Reservation,
    ReservationStatus,
    Stock,
    StockState,
)

__all__ = [
    "RESERVATION",
    "STOCK",
    "CommitItems",
    "Hold",
    "InventoryCommand",
    "NoStock",
    "Plan",
    "ReleaseItems",
    "Reservation",
    "ReservationCommitted",
    "ReservationConfirmed",
    "ReservationEvent",
    "ReservationRejected",
    "ReservationReleaseStarted",
    "ReservationReleased",
    "ReservationStatus",
    "ReserveItems",
    "ReservedItem",
    "SetStock",
    "Stock",
    "StockCommitted",
    "StockEvent",
    "StockReleased",
    "StockReserved",
    "StockSet",
    "StockState",
    "current",
    "plan",
]
