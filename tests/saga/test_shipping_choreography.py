"""The shipping worker acting on ``OrderPaid`` itself (``app.workers.paid_orders``) against a real
nats-server, only the shipping worker running: a paid order is shipped with the saga's command id, the
event's correlation id and trace; a repeated delivery, or a ``ship`` command for the same order, ships
once; other order events are acked without being read; the saga's ``recall`` still compensates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from nats.aio.client import Client as NATS

from app.domain.order import ORDER, CancelOrder, CreateOrder, MarkOrderPaid, OrderItem
from app.domain.saga import StepName, command_id
from app.domain.shipping import SHIPPING
from app.eventstore.envelope import Metadata, RecordedEvent
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.service.handler import CommandHandler
from app.service.repository import Repository
from app.settings import Settings
from app.workers.commands import Recall, Ship, publish_command
from app.workers.paid_orders import PAID_ORDERS_CONSUMER, paid_orders_handler
from app.workers.runner import worker_loops
from app.workers.shipping import shipping_handler
from tests.support.eventually import eventually

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SETTINGS = {"default_stock": 10, "health_port": 0, "shipping_fail_user_ids": "13"}


@pytest.fixture
async def shipping(nc: NATS, store: JetStreamEventStore, snapshots: SnapshotStore) -> AsyncIterator[None]:
    """The shipping worker's loops (``COMMANDS`` and ``OrderPaid``) running in this event loop."""
    settings = Settings(nats_url=nc.connected_url.geturl(), **SETTINGS)  # type: ignore[union-attr, arg-type]
    loops = await worker_loops(nc, ("shipping",), settings, store, snapshots)
    assert [loop.durable for loop in loops] == ["worker-shipping", PAID_ORDERS_CONSUMER]
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    yield
    for loop in loops:
        loop.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


async def create(store: JetStreamEventStore, order_id: int, user_id: int = 7) -> None:
    cmd = CreateOrder(
        order_id=order_id,
        user_id=user_id,
        items=(OrderItem(product_id=1, quantity=1),),
        amount=Decimal("9.99"),
        at=datetime.now(UTC),
    )
    await CommandHandler(store, ORDER).execute(order_id, cmd, Metadata(correlation_id=f"corr-{order_id}"))


async def pay(store: JetStreamEventStore, order_id: int) -> RecordedEvent:
    """``OrderPaid`` appended as the saga appends it: in the saga's trace, caused by the payment."""
    meta = Metadata(correlation_id=f"corr-{order_id}", causation_id="payment-1", traceparent=TRACEPARENT)
    paid = MarkOrderPaid(order_id=order_id, payment_id=f"p-{order_id}", at=datetime.now(UTC))
    await CommandHandler(store, ORDER).execute(order_id, paid, meta)
    return (await Repository(store, ORDER).history(order_id))[-1]


async def shipment(store: JetStreamEventStore, order_id: int, count: int = 1) -> list[RecordedEvent]:
    """The order's shipping events once there are ``count`` of them."""

    async def stored() -> list[RecordedEvent]:
        history = await Repository(store, SHIPPING).history(order_id)
        return history if len(history) >= count else []

    return await eventually(stored, timeout=10, what=f"{count} shipping event(s) of order {order_id}")


async def settled(nc: NATS) -> None:
    """The ``OrderPaid`` consumer has acked every order event stored so far, none redelivered."""
    js = nc.jetstream()

    async def acked() -> bool:
        info = await js.consumer_info(STREAM, PAID_ORDERS_CONSUMER)
        return info.num_pending == 0 and info.num_ack_pending == 0

    await eventually(acked, timeout=10, what=f"{PAID_ORDERS_CONSUMER} acked everything")
    assert (await js.consumer_info(STREAM, PAID_ORDERS_CONSUMER)).num_redelivered == 0


@pytest.mark.usefixtures("shipping")
async def test_a_paid_order_ships_in_the_payments_correlation_and_trace(
    nc: NATS, store: JetStreamEventStore
) -> None:
    await create(store, 1)
    paid = await pay(store, 1)
    [dispatched] = await shipment(store, 1)
    assert dispatched.envelope.type == "ShipmentDispatched"
    assert dispatched.envelope.data["command_id"] == "1:ship_order:1"  # the saga's ship command id
    assert dispatched.envelope.correlation_id == "corr-1"
    assert dispatched.envelope.causation_id == paid.envelope.event_id
    # one trace with the saga: the OrderPaid's (TRACEPARENT's, or its append's span's when a tracer
    # provider is installed — an earlier test of the session may have installed one)
    assert paid.envelope.traceparent is not None
    assert dispatched.envelope.traceparent is not None
    assert dispatched.envelope.traceparent.split("-")[1] == paid.envelope.traceparent.split("-")[1]
    await settled(nc)


@pytest.mark.usefixtures("shipping")
async def test_the_injected_carrier_failure_applies_to_the_paid_orders_customer(
    nc: NATS, store: JetStreamEventStore
) -> None:
    await create(store, 2, user_id=13)
    await pay(store, 2)
    [failed] = await shipment(store, 2)
    assert failed.envelope.type == "ShipmentFailed"
    await settled(nc)


@pytest.mark.usefixtures("shipping")
async def test_an_order_paid_delivered_again_ships_once(
    nc: NATS, store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    await create(store, 3)
    await pay(store, 3)
    await shipment(store, 3)
    await settled(nc)
    # the same stored OrderPaid delivered twice more, to a fresh replica (no cached state)
    sub = await nc.jetstream().pull_subscribe("events.order.3", durable=None, stream=STREAM)
    [created, paid] = await sub.fetch(2, timeout=5)
    replica = paid_orders_handler(store, shipping_handler(store, snapshots, Settings(**SETTINGS)))  # type: ignore[arg-type]
    for _ in range(2):
        await replica(paid)
    await replica(created)
    await sub.unsubscribe()
    history = await Repository(store, SHIPPING).history(3)
    assert [e.envelope.type for e in history] == ["ShipmentDispatched"]


@pytest.mark.usefixtures("shipping")
async def test_other_order_events_are_acked_without_being_read(nc: NATS, store: JetStreamEventStore) -> None:
    await create(store, 4)
    cancel = CancelOrder(order_id=4, reason="changed my mind", at=datetime.now(UTC))
    await CommandHandler(store, ORDER).execute(4, cancel, Metadata(correlation_id="corr-4"))
    # a body nothing could decode: acked all the same, so the header alone decided
    await nc.jetstream().publish("events.order.5", b"not json", headers={"Eda-Type": "OrderCreated"})
    await settled(nc)
    for order_id in (4, 5):
        assert await Repository(store, SHIPPING).history(order_id) == []


@pytest.mark.usefixtures("shipping")
async def test_an_undecodable_order_paid_is_terminated_not_retried(
    nc: NATS, store: JetStreamEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    await nc.jetstream().publish("events.order.8", b"not json", headers={"Eda-Type": "OrderPaid"})
    await settled(nc)
    assert "undecodable OrderPaid on events.order.8" in caplog.text
    await create(store, 9)  # the consumer goes on with the next order
    await pay(store, 9)
    await shipment(store, 9)


@pytest.mark.usefixtures("shipping")
async def test_a_ship_command_and_the_order_paid_of_one_order_ship_once(
    nc: NATS, store: JetStreamEventStore
) -> None:
    """A saga of the previous design sends ``ship`` and appends ``OrderPaid``: one shipment."""
    js = nc.jetstream()
    for order_id in range(10, 20):
        await create(store, order_id)
    for order_id in range(10, 20):  # both at once, in both orders
        ship = Ship(command_id=f"{order_id}:ship_order:1", order_id=order_id, user_id=7)
        command = publish_command(js, "shipping", ship, Metadata(correlation_id=f"corr-{order_id}"))
        event = pay(store, order_id)
        await asyncio.gather(*((command, event) if order_id % 2 else (event, command)))
    await settled(nc)
    await eventually(lambda: _drained(nc), timeout=10, what="the ship commands handled (work queue empty)")
    for order_id in range(10, 20):
        history = await Repository(store, SHIPPING).history(order_id)
        assert [e.envelope.type for e in history] == ["ShipmentDispatched"], order_id


async def _drained(nc: NATS) -> bool:
    return (await nc.jetstream().stream_info("COMMANDS")).state.messages == 0


@pytest.mark.usefixtures("shipping")
async def test_a_recall_cancels_the_choreographed_shipment(nc: NATS, store: JetStreamEventStore) -> None:
    await create(store, 6)
    await pay(store, 6)
    [dispatched] = await shipment(store, 6)
    recall = Recall(command_id=command_id(6, StepName.RECALL, 1), order_id=6)
    await publish_command(nc.jetstream(), "shipping", recall, Metadata(correlation_id="corr-6"))
    _, cancelled = await shipment(store, 6, count=2)
    assert cancelled.envelope.type == "ShipmentCancelled"
    assert cancelled.envelope.data["tracking_number"] == dispatched.envelope.data["tracking_number"]
