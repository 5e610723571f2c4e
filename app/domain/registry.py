"""Every aggregate's decider, so adapters can know all event and state types in one place."""

from __future__ import annotations

from typing import Any

from app.domain.catalog import PRODUCT
from app.domain.common import Decider
from app.domain.inventory import RESERVATION, STOCK
from app.domain.order import ORDER
from app.domain.payment import PAYMENT
from app.domain.saga import SAGA
from app.domain.shipping import SHIPPING

DECIDERS: tuple[Decider[Any, Any, Any], ...] = (
    ORDER,
    STOCK,
    RESERVATION,
    PAYMENT,
    SHIPPING,
    SAGA,
    PRODUCT,
)


def all_event_types() -> tuple[type[Any], ...]:
    """The event classes of every aggregate."""
    return tuple(cls for decider in DECIDERS for cls in decider.event_types)


def decider_for(aggregate_type: str) -> Decider[Any, Any, Any]:
    """The decider of ``aggregate_type`` (``KeyError`` if none)."""
    for decider in DECIDERS:
        if decider.aggregate_type == aggregate_type:
            return decider
    raise KeyError(aggregate_type)
