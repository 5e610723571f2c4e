"""Shipping: one aggregate per order (``events.shipping.<order_id>``): dispatch or fail, cancel."""

from app.domain.shipping.decider import (
    SHIPPING,
    CancelShipment,
    Dispatched,
    DispatchShipment,
    Failed,
    NoShipment,
    ShipmentCancelled,
    ShipmentCancelledState,
    ShipmentDispatched,
    ShipmentEvent,
    ShipmentFailed,
    ShippingCommand,
    ShippingState,
    tracking_number_for,
)

__all__ = [
    "SHIPPING",
    "CancelShipment",
    "DispatchShipment",
    "Dispatched",
    "Failed",
    "NoShipment",
    "ShipmentCancelled",
    "ShipmentCancelledState",
    "ShipmentDispatched",
    "ShipmentEvent",
    "ShipmentFailed",
    "ShippingCommand",
    "ShippingState",
    "tracking_number_for",
]
