"""Each worker on the in-memory event store: what a command appends, that a redelivery appends
nothing more, refusals, and commands meant for another worker; the ``ship`` an ``OrderPaid`` makes and
the consumer that reads it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from nats.js.api import DeliverPolicy

from app.deploy.provision import catalogue
from app.domain.order import OrderPaid
from app.domain.saga import StepName, command_id
from app.eventstore.consumer import PermanentError
from app.eventstore.envelope import Metadata, StreamId, utcnow
from app.eventstore.jetstream import STREAM
from app.eventstore.memory import InMemoryEventStore
from app.settings import Settings
from app.workers.base import worker_consumer_config
from app.workers.commands import Charge, Commit, Item, Recall, Refund, Release, Reserve, Ship
from app.workers.inventory import inventory_handler
from app.workers.paid_orders import paid_orders_consumer_config, ship_when_paid
from app.workers.payment import payment_handler
from app.workers.shipping import shipping_handler
from tests.support.stores import memory_store

META = Metadata(correlation_id="test")
SETTINGS = Settings(default_stock=10, payment_decline_above=100, shipping_fail_user_ids="13")
ITEMS = (Item(1, 2), Item(2, 3))


async def types(store: InMemoryEventStore, aggregate_type: str, aggregate_id: int) -> list[str]:
    stream = StreamId(aggregate_type, str(aggregate_id))
    return [e.envelope.type for e in (await store.load(stream)).events]


async def test_payment_charges_once_and_refunds_once() -> None:
    store = memory_store()
    pay = payment_handler(store, None, SETTINGS)
    charge = Charge(command_id="1:charge:1", order_id=1, amount="99.99")
    await pay(charge, META)
    await pay(charge, META)  # redelivered
    refund = Refund(command_id="1:refund:1", order_id=1)
    await pay(refund, META)
    await pay(refund, META)
    assert await types(store, "payment", 1) == ["PaymentCharged", "PaymentRefunded"]


async def test_payment_declines_above_the_limit() -> None:
    store = memory_store()
    await payment_handler(store, None, SETTINGS)(
        Charge(command_id="2:charge:1", order_id=2, amount="100.01"), META
    )
    assert await types(store, "payment", 2) == ["PaymentDeclined"]


async def test_shipping_dispatches_fails_for_chosen_users_and_recalls() -> None:
    store = memory_store()
    ship = shipping_handler(store, None, SETTINGS)
    await ship(Ship(command_id="1:ship:1", order_id=1, user_id=7), META)
    await ship(Ship(command_id="1:ship:1", order_id=1, user_id=7), META)
    await ship(Recall(command_id="1:recall:1", order_id=1), META)
    await ship(Ship(command_id="2:ship:1", order_id=2, user_id=13), META)
    assert await types(store, "shipping", 1) == ["ShipmentDispatched", "ShipmentCancelled"]
    assert await types(store, "shipping", 2) == ["ShipmentFailed"]


async def test_inventory_reserves_commits_and_stock_moves_once() -> None:
    store = memory_store()
    inventory = inventory_handler(store, None, SETTINGS)
    for _ in range(2):
        await inventory(Reserve(command_id="7:reserve:1", order_id=7, items=ITEMS), META)
    for _ in range(2):
        await inventory(Commit(command_id="7:commit:1", order_id=7, items=ITEMS), META)
    assert await types(store, "reservation", 7) == ["ReservationConfirmed", "ReservationCommitted"]
    assert await types(store, "inventory", 1) == ["StockSet", "StockReserved", "StockCommitted"]
    assert await types(store, "inventory", 2) == ["StockSet", "StockReserved", "StockCommitted"]


async def test_inventory_rejects_what_is_short_and_holds_nothing() -> None:
    store = memory_store()
    inventory = inventory_handler(store, None, SETTINGS)
    await inventory(Reserve(command_id="8:reserve:1", order_id=8, items=(Item(1, 2), Item(2, 11))), META)
    assert await types(store, "reservation", 8) == ["ReservationRejected"]
    assert await types(store, "inventory", 1) == []


async def test_inventory_release_gives_the_units_back_before_saying_released() -> None:
    store = memory_store()
    inventory = inventory_handler(store, None, SETTINGS)
    await inventory(Reserve(command_id="9:reserve:1", order_id=9, items=ITEMS), META)
    await inventory(Release(command_id="9:release:1", order_id=9), META)  # an old release: no items
    assert await types(store, "reservation", 9) == [
        "ReservationConfirmed",
        "ReservationReleaseStarted",
        "ReservationReleased",
    ]
    assert await types(store, "inventory", 2) == ["StockSet", "StockReserved", "StockReleased"]


@pytest.mark.parametrize(
    ("build", "cmd"),
    [
        (payment_handler, Ship(command_id="x", order_id=1, user_id=1)),
        (shipping_handler, Reserve(command_id="x", order_id=1)),
        (inventory_handler, Charge(command_id="x", order_id=1, amount="1")),
    ],
)
async def test_a_command_of_another_worker_is_refused_for_good(build: object, cmd: object) -> None:
    handler = build(memory_store(), None, SETTINGS)  # type: ignore[operator]
    with pytest.raises(PermanentError, match="cannot"):
        await handler(cmd, META)


def test_an_order_paid_becomes_the_ship_command_the_saga_sends() -> None:
    paid = OrderPaid(order_id=7, payment_id="p", amount=Decimal("1.00"), at=utcnow(), user_id=13)
    assert ship_when_paid(paid) == Ship(command_id=command_id(7, StepName.SHIP, 1), order_id=7, user_id=13)
    assert ship_when_paid(paid).command_id == "7:ship_order:1"
    stored_before_user_id = OrderPaid(order_id=7, payment_id="p", amount=Decimal("1.00"), at=utcnow())
    assert ship_when_paid(stored_before_user_id).user_id == 0


def test_the_order_paid_consumer_is_the_workers_on_order_events_from_its_creation() -> None:
    commands, orders = worker_consumer_config("shipping"), paid_orders_consumer_config()
    assert (orders.durable_name, orders.filter_subject, orders.deliver_policy) == (
        "worker-shipping-orders",
        "events.order.>",
        DeliverPolicy.NEW,
    )
    same = ("ack_policy", "ack_wait", "max_deliver", "max_ack_pending")
    assert [getattr(orders, f) for f in same] == [getattr(commands, f) for f in same]
    assert (STREAM, orders) in catalogue(1).consumers
