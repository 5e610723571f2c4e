"""The Shipping decider (one aggregate per order): dispatch once, fail, or cancel (compensation).

The tracking number is derived from the order and command ids, so a retried dispatch reports the
same one. ``fail_reason`` on the command is how the edge injects a carrier failure (fault setting).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from app.domain.common import Decider, positive_int


def tracking_number_for(order_id: int, command_id: str) -> str:
    digest = hashlib.sha256(f"{order_id}:{command_id}".encode()).hexdigest()[:10].upper()
    return f"TRK-{order_id}-{digest}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchShipment:
    order_id: int
    command_id: str
    at: datetime
    fail_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelShipment:
    order_id: int
    command_id: str
    at: datetime
    reason: str = "compensation"


type ShippingCommand = DispatchShipment | CancelShipment


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentDispatched:
    TYPE: ClassVar[str] = "ShipmentDispatched"
    VERSION: ClassVar[int] = 1
    order_id: int
    tracking_number: str
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentFailed:
    TYPE: ClassVar[str] = "ShipmentFailed"
    VERSION: ClassVar[int] = 1
    order_id: int
    reason: str
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentCancelled:
    """Compensation: a dispatched parcel is recalled; an undispatched one can no longer leave."""

    TYPE: ClassVar[str] = "ShipmentCancelled"
    VERSION: ClassVar[int] = 1
    order_id: int
    tracking_number: str | None
    reason: str
    command_id: str
    at: datetime


type ShipmentEvent = ShipmentDispatched | ShipmentFailed | ShipmentCancelled


@dataclass(frozen=True, slots=True, kw_only=True)
class NoShipment:
    """Nothing happened yet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Dispatched:
    tracking_number: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentCancelledState:
    tracking_number: str | None


type ShippingState = NoShipment | Dispatched | Failed | ShipmentCancelledState


def decide(command: ShippingCommand, state: ShippingState) -> list[ShipmentEvent]:
    positive_int(command.order_id, field="order_id")
    match command:
        case DispatchShipment():
            if not isinstance(state, NoShipment):
                return []  # dispatched, failed or cancelled before: decided once
            if command.fail_reason:
                return [
                    ShipmentFailed(
                        order_id=command.order_id,
                        reason=command.fail_reason,
                        command_id=command.command_id,
                        at=command.at,
                    )
                ]
            return [
                ShipmentDispatched(
                    order_id=command.order_id,
                    tracking_number=tracking_number_for(command.order_id, command.command_id),
                    command_id=command.command_id,
                    at=command.at,
                )
            ]
        case CancelShipment():
            if isinstance(state, ShipmentCancelledState):
                return []
            tracking = state.tracking_number if isinstance(state, Dispatched) else None
            return [
                ShipmentCancelled(
                    order_id=command.order_id,
                    tracking_number=tracking,
                    reason=command.reason,
                    command_id=command.command_id,
                    at=command.at,
                )
            ]
        case _:
            raise TypeError(f"unknown shipping command {command!r}")


def evolve(state: ShippingState, event: ShipmentEvent) -> ShippingState:
    match event:
        case ShipmentDispatched():
            return Dispatched(tracking_number=event.tracking_number)
        case ShipmentFailed():
            return Failed(reason=event.reason)
        case ShipmentCancelled():
            return ShipmentCancelledState(tracking_number=event.tracking_number)
        case _:
            raise TypeError(f"unknown shipment event {event!r}")


SHIPPING: Decider[ShippingCommand, ShipmentEvent, ShippingState] = Decider(
    aggregate_type="shipping",
    decide=decide,
    evolve=evolve,
    initial=NoShipment(),
    event_types=(ShipmentDispatched, ShipmentFailed, ShipmentCancelled),
    state_types=(NoShipment, Dispatched, Failed, ShipmentCancelledState),
)
