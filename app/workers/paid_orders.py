"""The shipping worker's choreographed step: it ships an order once the order is paid, reading
``OrderPaid`` from ``EVENTS`` itself (durable ``worker-shipping-orders`` on ``events.order.>``) rather
than a ``ship`` command the saga would store on ``COMMANDS`` — one stored message less per order.

An ``OrderPaid`` runs exactly the path of a ``ship`` command: the same ``Ship`` (command id
``command_id(order, SHIP, 1)``, the saga's own rule), the same handler, span and metrics. So a ``ship``
command still queued by a saga of an earlier version and the ``OrderPaid`` of the same order ship once
(the Shipping aggregate decides a dispatch once), and the saga's ``recall`` compensates it as before.
The shipment carries the event's correlation id and trace context, caused by the event.

Every order event passes this consumer; only ``OrderPaid`` is decoded (its ``Eda-Type`` header tells,
without reading the body), the rest is acked at once. The consumer is created by ``eda provision`` at
the stream's end (``DeliverPolicy.NEW``): orders paid before it existed got their ``ship`` command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from app.domain.order import OrderPaid
from app.domain.saga import StepName, command_id
from app.eventstore.consumer import KeyedLocks, PermanentError, PullLoop
from app.eventstore.envelope import caused_by
from app.eventstore.jetstream import STREAM
from app.eventstore.ports import EventStore
from app.eventstore.required import require_consumer
from app.settings import Settings
from app.workers.base import WorkerHandler, command_runner, order_key, worker_consumer_config
from app.workers.commands import Ship

PAID_ORDERS_CONSUMER = "worker-shipping-orders"


def paid_orders_consumer_config() -> ConsumerConfig:
    """Like the worker's ``COMMANDS`` consumer (ack wait, redeliveries, in flight), on order events
    from the moment it is created."""
    return dataclasses.replace(
        worker_consumer_config("shipping"),
        durable_name=PAID_ORDERS_CONSUMER,
        filter_subject="events.order.>",
        deliver_policy=DeliverPolicy.NEW,
    )


def ship_when_paid(paid: OrderPaid) -> Ship:
    """The ``ship`` command the saga would send for this payment (pure). ``user_id`` is 0 for an
    ``OrderPaid`` stored before it carried one (only the injected carrier failures look at it)."""
    return Ship(
        command_id=command_id(paid.order_id, StepName.SHIP, 1),
        order_id=paid.order_id,
        user_id=paid.user_id or 0,
    )


def paid_orders_handler(store: EventStore, ship: WorkerHandler) -> Callable[[Msg], Awaitable[None]]:
    """The message handler of ``worker-shipping-orders``: ``ship`` (the shipping worker's handler) for
    each ``OrderPaid``, nothing for other order events."""
    run = command_runner("shipping", ship)

    async def on_message(msg: Msg) -> None:
        if (msg.headers or {}).get("Eda-Type") != OrderPaid.TYPE:
            return  # OrderCreated, OrderShipped, ...: not the shipping worker's business
        try:
            recorded = store.codec.decode(msg.data, msg.metadata.sequence.stream if msg.metadata else 0)
        except msgspec.DecodeError as exc:  # redelivering it would not help: terminated and logged
            raise PermanentError(f"undecodable OrderPaid on {msg.subject}: {exc}") from exc
        if not isinstance(recorded.event, OrderPaid):
            raise PermanentError(f"event {recorded.envelope.event_id} says OrderPaid but is not one")
        await run(msg, ship_when_paid(recorded.event), caused_by(recorded.envelope))

    return on_message


async def start_paid_orders(
    nc: NATS, store: EventStore, ship: WorkerHandler, settings: Settings, locks: KeyedLocks
) -> PullLoop:
    """Check the durable consumer exists; return its (not yet running) loop. ``locks``: the ones of the
    worker's ``COMMANDS`` loop, so a ``ship`` and an ``OrderPaid`` of one order take turns."""
    await require_consumer(nc.jetstream(), STREAM, PAID_ORDERS_CONSUMER)
    return PullLoop(
        nc=nc,
        stream=STREAM,
        durable=PAID_ORDERS_CONSUMER,
        handler=paid_orders_handler(store, ship),
        concurrency=settings.worker_concurrency,
        key=order_key,
        name=PAID_ORDERS_CONSUMER,
        locks=locks,
    )
