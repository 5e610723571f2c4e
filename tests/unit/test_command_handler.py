"""The one command pipeline (``CommandHandler``) on the in-memory event store: cache-first decisions
verified by the append, assumed-new aggregates, derived ids, If-Match, and a loud end when conflicts
never stop."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from app.domain import order
from app.domain.common import InvalidTransition
from app.domain.payment import PAYMENT, ChargePayment
from app.eventstore.envelope import NEW, StreamId
from app.eventstore.ports import ConcurrencyError
from app.service.handler import (
    NO_RETRY,
    CommandHandler,
    RetriesExhausted,
    RetryPolicy,
    VersionMismatch,
    derived_ids,
)
from app.service.repository import Loaded
from tests.support.orders import META, T0
from tests.support.stores import RivalWriter, memory_store

QUICK = RetryPolicy(attempts=4, first_delay_s=0.0)


def create(order_id: int) -> order.CreateOrder:
    return order.CreateOrder(order_id=order_id, user_id=2, items=(), amount=Decimal("5.00"), at=T0)


def paid_by_rival(stream: StreamId) -> order.OrderPaid:
    return order.OrderPaid(
        order_id=int(stream.aggregate_id), payment_id="rival", amount=Decimal("5.00"), at=T0
    )


def created(stream: StreamId) -> order.OrderCreated:
    oid = int(stream.aggregate_id)
    return order.OrderCreated(
        order_id=oid, user_id=2, items=(), amount=Decimal("5.00"), currency="USD", at=T0, owner="2"
    )


async def test_execute_appends_and_reports_before_and_after() -> None:
    orders = CommandHandler(memory_store(), order.ORDER)
    done = await orders.execute(1, create(1), META)
    assert [type(e) for e in done.events] == [order.OrderCreated]
    assert done.before == order.ORDER.initial
    assert isinstance(done.state, order.Order)
    assert done.position.version == 1
    assert (await orders.execute(1, create(1), META)).events == []  # idempotent create: nothing appended


async def test_unverified_loads_answer_from_the_cache_verified_ones_catch_up() -> None:
    store = memory_store()
    writer, cached = CommandHandler(store, order.ORDER), CommandHandler(store, order.ORDER, cache_size=10)
    await writer.execute(1, create(1), META)
    first = await cached.load(1)
    await writer.execute(1, order.CancelOrder(order_id=1, reason="other writer", at=T0), META)
    assert await cached.load(1, fresh=False) == first
    fresh = await cached.load(1)
    assert isinstance(fresh.state, order.Order)
    assert (fresh.state.status, fresh.position.version) == (order.OrderStatus.CANCELLED, 2)


async def test_a_stale_cache_costs_a_conflict_then_the_command_is_decided_again() -> None:
    store = memory_store()
    writer, cached = CommandHandler(store, order.ORDER), CommandHandler(store, order.ORDER, cache_size=10)
    await writer.execute(1, create(1), META)
    await cached.load(1)  # cached at v1
    await writer.execute(1, order.MarkOrderPaid(order_id=1, payment_id="p", at=T0), META)  # v2 elsewhere
    done = await cached.execute(1, order.CancelOrder(order_id=1, reason="late", at=T0), META)
    assert done.position.version == 3  # decided on v2 after the conflict, not lost
    assert isinstance(done.before, order.Order)
    assert done.before.status is order.OrderStatus.PAID


async def test_a_refusal_on_a_cached_state_is_checked_on_a_fresh_one() -> None:
    store = memory_store()
    writer, cached = CommandHandler(store, order.ORDER), CommandHandler(store, order.ORDER, cache_size=10)
    await writer.execute(1, create(1), META)
    await cached.load(1)  # cached: created, so it "cannot be shipped"
    await writer.execute(1, order.MarkOrderPaid(order_id=1, payment_id="p", at=T0), META)
    done = await cached.execute(1, order.ShipOrder(order_id=1, tracking_number="t", at=T0), META)
    assert isinstance(done.state, order.Order)
    assert done.state.status is order.OrderStatus.SHIPPED
    with pytest.raises(InvalidTransition):  # refused on the fresh state: the refusal stands
        await cached.execute(1, order.MarkOrderPaid(order_id=1, payment_id="other", at=T0), META)


async def test_a_redelivered_opening_command_is_not_applied_twice() -> None:
    payments = CommandHandler(memory_store(), PAYMENT)
    charge = ChargePayment(order_id=3, amount=Decimal("9.99"), command_id="3:charge:1", at=T0)
    for _ in range(3):  # the first delivery and two redeliveries, each decided on an assumed-new state
        await payments.execute(3, charge, META, cause=charge.command_id, assume_new=True)
    history = await payments.repository.history(3)
    assert [type(e.event).__name__ for e in history] == ["PaymentCharged"]


async def test_assume_new_prefers_what_the_cache_knows() -> None:
    store = memory_store()
    orders = CommandHandler(store, order.ORDER, cache_size=10)
    await orders.execute(1, create(1), META)
    store_before = await store.last_sequence()
    # known in the cache: the cached state is used, the repeat is a no-op, no conflict, nothing appended
    assert (await orders.execute(1, create(1), META, assume_new=True)).events == []
    assert await store.last_sequence() == store_before


async def test_derived_ids_make_a_retried_append_a_duplicate() -> None:
    store = memory_store()
    orders = CommandHandler(store, order.ORDER)
    first = await orders.execute(1, create(1), META, cause="cmd-1", assume_new=True)
    again = await orders.append(1, first.events, Loaded(order.ORDER.initial, NEW), META, cause="cmd-1")
    assert again.duplicate
    assert again.position == first.position
    stream = StreamId("order", "1")
    ids = [n.event_id for n in derived_ids("cmd-1", stream, NEW, first.events)]
    assert [e.envelope.event_id for e in (await store.load(stream)).events] == ids
    assert derived_ids("cmd-2", stream, NEW, first.events)[0].event_id != ids[0]


async def test_if_match_is_checked_and_never_retried() -> None:
    store = memory_store()
    orders = CommandHandler(store, order.ORDER)
    await orders.execute(6, create(6), META)
    cancel = order.CancelOrder(order_id=6, reason="x", at=T0)
    with pytest.raises(VersionMismatch):
        await orders.execute(6, cancel, META, expected_version=7)
    rival = RivalWriter(store, paid_by_rival, "events.order.6")
    with pytest.raises(ConcurrencyError) as raised:  # someone else got there first: 409, not a retry
        await CommandHandler(rival, order.ORDER).execute(6, cancel, META, expected_version=1)
    assert not isinstance(raised.value, RetriesExhausted)
    assert rival.rival_appends == 1


async def test_conflicts_that_never_stop_end_loudly(caplog: pytest.LogCaptureFixture) -> None:
    store = memory_store()
    await CommandHandler(store, order.ORDER).execute(1, create(1), META)
    rival = RivalWriter(store, created, "events.order.>")  # re-creates the order before each append
    orders = CommandHandler(rival, order.ORDER, cache_size=10, retry=QUICK)
    with caplog.at_level(logging.ERROR), pytest.raises(RetriesExhausted):
        await orders.execute(1, order.CancelOrder(order_id=1, reason="x", at=T0), META)
    assert rival.rival_appends == QUICK.attempts
    assert "4 conflicts in a row" in caplog.text


async def test_without_retry_the_first_conflict_is_raised() -> None:
    store = memory_store()
    orders = CommandHandler(store, order.ORDER, retry=NO_RETRY)
    await orders.execute(1, create(1), META)
    with pytest.raises(ConcurrencyError) as raised:  # an id taken already (the API then takes the next)
        await orders.execute(1, create(1), META, assume_new=True)
    assert not isinstance(raised.value, RetriesExhausted)
