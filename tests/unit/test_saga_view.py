"""The saga's view and what a reaction stores (issue 16): the forward path of a seed order stores
only the order's events, a decision no order event says is stored as a record, and the records and
order events fold to the state the decider intended."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from app.domain.inventory.events import ReservationConfirmed, ReservedItem
from app.domain.order import ORDER, CancelOrder, CreateOrder, OrderItem
from app.domain.order.events import OrderCancelled, OrderCompleted, OrderPaid, OrderShipped
from app.domain.payment.decider import PaymentCharged, PaymentDeclined
from app.domain.saga import React, Saga, SagaAdvanced, SagaStatus, StepName, StepStatus
from app.domain.saga.view import commands_due, fold_view, reaction
from app.domain.shipping.decider import ShipmentDispatched
from app.eventstore.envelope import Metadata, StreamId
from app.service.handler import CommandHandler
from app.service.sagaview import SagaViews
from tests.support.stores import memory_store

T = datetime(2026, 1, 1, tzinfo=UTC)


def _created(items: dict[int, int] | None = None) -> tuple[list[object], object]:
    lines = tuple(OrderItem(product_id=p, quantity=q) for p, q in (items or {}).items())
    cmd = CreateOrder(order_id=1, user_id=9, items=lines, amount=Decimal("10.00"), at=T)
    events = list(ORDER.decide(cmd, ORDER.initial))
    return events, ORDER.fold(events)


def _react(fact: object, saga: object, order: object):  # type: ignore[no-untyped-def]
    return reaction(React(order_id=1, trigger_id=f"t-{type(fact).__name__}", fact=fact, at=T), saga, order)  # type: ignore[arg-type]


def test_a_seed_order_stores_only_the_orders_events() -> None:
    log, order = _created()
    saga = fold_view(log)  # type: ignore[arg-type]
    assert isinstance(saga, Saga)
    assert [s.name for s in saga.running()] == [StepName.CHARGE]
    assert commands_due(saga) == [StepName.CHARGE]
    paid = _react(
        PaymentCharged(order_id=1, payment_id="p", amount=Decimal("10.00"), command_id="c", at=T), saga, order
    )
    assert paid.saga_events == []
    assert [type(e) for e in paid.order_events] == [OrderPaid]
    assert [type(e).__name__ for e in paid.decided] == ["SagaAdvanced"]  # decided, said by OrderPaid
    log += paid.order_events
    order = ORDER.fold(paid.order_events, order)  # type: ignore[arg-type]
    saga = fold_view(log)  # type: ignore[arg-type]
    assert isinstance(saga, Saga)
    assert saga.step(StepName.SHIP) is not None
    assert commands_due(saga) == []  # the shipping worker ships on OrderPaid
    shipped = _react(ShipmentDispatched(order_id=1, tracking_number="TN", command_id="s", at=T), saga, order)
    assert shipped.saga_events == []
    assert [type(e) for e in shipped.order_events] == [OrderShipped, OrderCompleted]
    log += shipped.order_events
    done = fold_view(log)  # type: ignore[arg-type]
    assert isinstance(done, Saga)
    assert done.status is SagaStatus.COMPLETED
    assert done.tracking_number == "TN"
    assert len(log) == 4  # with the charge command, PaymentCharged and ShipmentDispatched: 7 messages


def test_what_no_order_event_says_is_stored_as_a_record() -> None:
    log, order = _created({5: 2})
    saga = fold_view(log)  # type: ignore[arg-type]
    confirmed = ReservationConfirmed(
        order_id=1, items=(ReservedItem(product_id=5, quantity=2),), command_id="r", at=T
    )
    out = _react(confirmed, saga, order)
    assert [type(e) for e in out.saga_events] == [SagaAdvanced]
    assert out.order_events == []
    after = fold_view(out.saga_events, saga)
    assert isinstance(after, Saga)
    assert [s.name for s in after.running()] == [StepName.CHARGE]


def test_a_decline_stores_the_record_and_cancels_the_order() -> None:
    log, order = _created()
    saga = fold_view(log)  # type: ignore[arg-type]
    out = _react(
        PaymentDeclined(order_id=1, amount=Decimal("10.00"), reason="too much", command_id="c", at=T),
        saga,
        order,
    )
    assert [type(e) for e in out.saga_events] == [SagaAdvanced]
    assert [type(e) for e in out.order_events] == [OrderCancelled]
    final = fold_view([*log, *out.saga_events, *out.order_events])  # type: ignore[list-item]
    assert isinstance(final, Saga)
    assert final.status is SagaStatus.CANCELLED  # nothing was started that needs undoing
    charge = final.step(StepName.CHARGE)
    assert charge is not None
    assert charge.status is StepStatus.FAILED
    assert final.step(StepName.REFUND) is None  # a declined charge is not refunded


def test_the_users_cancel_starts_the_compensation_in_the_view() -> None:
    log, order = _created()
    cancelled = list(ORDER.decide(CancelOrder(order_id=1, reason="user", at=T), order))  # type: ignore[arg-type]
    saga = fold_view([*log, *cancelled])  # type: ignore[list-item]
    assert isinstance(saga, Saga)
    assert saga.status is SagaStatus.COMPENSATING
    assert saga.reason == "order cancelled: user"
    assert [s.name for s in saga.running()] == [StepName.REFUND]


async def test_an_uncached_loader_never_claims_to_hold_a_fact() -> None:
    store = memory_store()
    cmd = CreateOrder(order_id=7, user_id=9, items=(), amount=Decimal("1.00"), at=T)
    await CommandHandler(store, ORDER).execute(7, cmd, Metadata(correlation_id="c"))
    [created] = (await store.load(StreamId("order", "7"))).events
    assert SagaViews(store).observed(7, created) is False  # no cache: read, never assumed
    cached = SagaViews(store, cache_size=10)
    assert cached.observed(7, created) is True  # a new order is exactly this event
    assert isinstance((await cached.load(7, fresh=False)).saga, Saga)
