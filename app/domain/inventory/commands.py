"""Commands of the inventory (imperative). Time and ids arrive on the command."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.domain.inventory.events import ReservedItem


@dataclass(frozen=True, slots=True, kw_only=True)
class SetStock:
    """Set a product's on-hand stock (never below what is reserved)."""

    product_id: int
    stock: int
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReserveItems:
    """Reserve every item of an order, or none. ``default_stock`` applies to never-set products."""

    order_id: int
    items: tuple[ReservedItem, ...]
    command_id: str
    at: datetime
    default_stock: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseItems:
    """Give an order's reservation back; also forbids a later reservation for it (a timed-out reserve).
    ``items`` (the order's items) find units held by a reservation that was still in progress."""

    order_id: int
    command_id: str
    at: datetime
    items: tuple[ReservedItem, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitItems:
    """Take a completed order's reserved units out of stock."""

    order_id: int
    command_id: str
    at: datetime
    items: tuple[ReservedItem, ...] = ()


type InventoryCommand = SetStock | ReserveItems | ReleaseItems | CommitItems
