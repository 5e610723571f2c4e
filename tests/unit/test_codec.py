"""Codec: envelope round trip, wire names, and upcasting of an old OrderCreated (v1) on read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

import orjson
import pytest

from app.domain.order import OrderCreated, OrderItem, OrderPaid
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec, UnknownEventType
from app.eventstore.envelope import Metadata, NewEvent, StreamId
from app.eventstore.upcasting import UpcasterRegistry

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def test_envelope_round_trip() -> None:
    codec = EventCodec(all_event_types())
    event = OrderCreated(
        order_id=7,
        user_id=1,
        items=(OrderItem(product_id=2, quantity=3),),
        amount=Decimal("9.90"),
        currency="EUR",
        at=T0,
        owner=str(1),
    )
    new = NewEvent(event=event)
    env = codec.envelope(StreamId("order", "7"), 1, new, Metadata(correlation_id="c-1", traceparent="00-x"))
    raw = orjson.loads(codec.encode(env))
    assert raw["type"] == "OrderCreated"
    assert raw["schema_version"] == 3
    assert raw["event_id"] == new.event_id
    assert raw["occurred_at"] == "2026-01-15T10:00:00Z"
    assert raw["data"]["amount"] == "9.90"
    recorded = codec.decode(codec.encode(env), sequence=5)
    assert recorded.event == event
    assert recorded.sequence == 5
    assert recorded.envelope.correlation_id == "c-1"


def test_v1_order_created_is_upcast_to_the_current_version() -> None:
    codec = EventCodec(all_event_types())
    v1 = {
        "event_id": "018f0000-0000-7000-8000-000000000001",
        "type": "OrderCreated",
        "schema_version": 1,
        "aggregate_type": "order",
        "aggregate_id": "3",
        "aggregate_version": 1,
        "occurred_at": "2024-05-01T12:00:00Z",
        "correlation_id": "c",
        "causation_id": None,
        "traceparent": None,
        "data": {"order_id": 3, "user_id": 9, "items": [], "amount": "10.00", "at": "2024-05-01T12:00:00Z"},
    }
    recorded = codec.decode(orjson.dumps(v1), sequence=1)
    assert recorded.envelope.schema_version == 3
    assert recorded.event.currency == "USD"
    assert recorded.event.owner == "9"  # v2 → v3: an order belonged to its customer
    assert isinstance(recorded.event, OrderCreated)


def test_v2_order_created_without_owner_belongs_to_its_customer() -> None:
    """Orders stored before authentication (v2, no owner) load with owner = str(user_id), so the seed's
    integer customer 123 still owns them (its token's subject is "123")."""
    codec = EventCodec(all_event_types())
    data = {"order_id": 4, "user_id": 123, "items": [], "amount": "99.99", "currency": "USD"}
    v2 = {
        "event_id": "018f0000-0000-7000-8000-000000000002",
        "type": "OrderCreated",
        "schema_version": 2,
        "aggregate_type": "order",
        "aggregate_id": "4",
        "aggregate_version": 1,
        "occurred_at": "2025-05-01T12:00:00Z",
        "correlation_id": "c",
        "causation_id": None,
        "traceparent": None,
        "data": data | {"at": "2025-05-01T12:00:00Z"},
    }
    recorded = codec.decode(orjson.dumps(v2), sequence=1)
    assert isinstance(recorded.event, OrderCreated)
    assert recorded.event.owner == "123"
    assert recorded.event.user_id == 123


def _order_paid(data: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "event_id": "018f0000-0000-7000-8000-000000000002",
            "type": "OrderPaid",
            "schema_version": 1,
            "aggregate_type": "order",
            "aggregate_id": "3",
            "aggregate_version": 2,
            "occurred_at": "2025-05-01T12:00:00Z",
            "correlation_id": "c",
            "causation_id": None,
            "traceparent": None,
            "data": {"order_id": 3, "payment_id": "p", "amount": "10.00", "at": "2025-05-01T12:00:00Z"}
            | data,
        }
    )


def test_order_paid_stored_before_user_id_decodes_without_it() -> None:
    recorded = EventCodec(all_event_types()).decode(_order_paid({}), sequence=1)
    assert isinstance(recorded.event, OrderPaid)
    assert recorded.event.user_id is None
    assert recorded.event.payment_id == "p"


def test_a_reader_of_the_previous_release_decodes_an_order_paid_with_user_id() -> None:
    """``user_id`` came without a new ``VERSION``: the previous release's class (no such field) still
    reads what this one writes, so replicas of both can run side by side during a rollout."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class PreviousOrderPaid:
        TYPE: ClassVar[str] = "OrderPaid"
        VERSION: ClassVar[int] = 1
        order_id: int
        payment_id: str
        amount: Decimal
        at: datetime

    new = EventCodec(all_event_types()).decode(_order_paid({"user_id": 9}), sequence=1)
    assert isinstance(new.event, OrderPaid)
    assert new.event.user_id == 9
    old = EventCodec([PreviousOrderPaid]).decode(_order_paid({"user_id": 9}), sequence=1)
    assert old.event == PreviousOrderPaid(
        order_id=3, payment_id="p", amount=Decimal("10.00"), at=datetime(2025, 5, 1, 12, tzinfo=UTC)
    )


def test_unknown_types_decode_to_none_and_gaps_fail_loudly() -> None:
    codec = EventCodec([OrderPaid])
    with pytest.raises(UnknownEventType):
        codec.event_class("Nope")
    registry = UpcasterRegistry()
    with pytest.raises(LookupError, match="no upcaster"):
        registry.upcast("X", 1, {}, 3)
    registry.register("X", 1)(lambda d: d)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("X", 1)(lambda d: d)
