"""``eda provision``'s durable consumers on a real nats-server: the shipping worker's ``OrderPaid``
consumer starts at the stream's end when created (orders paid before it had their ``ship`` command),
and where a consumer starts is never "updated" — a consumer recreated at a backed-up position (a
restore from the mirror) is left as it is, not refused by the server on the next run."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js.api import DeliverPolicy

from app.deploy.provision import provision
from app.eventstore.jetstream import STREAM
from app.workers.paid_orders import PAID_ORDERS_CONSUMER, paid_orders_consumer_config


async def test_the_order_paid_consumer_is_created_at_the_streams_end(nc: NATS) -> None:
    js = nc.jetstream()
    await js.delete_consumer(STREAM, PAID_ORDERS_CONSUMER)
    for order_id in (1, 2):
        await js.publish(f"events.order.{order_id}", b"{}", headers={"Eda-Type": "OrderPaid"})
    outcomes = {o.name: o.action for o in await provision(nc, 1)}
    assert outcomes[f"{STREAM}/{PAID_ORDERS_CONSUMER}"] == "created"
    assert set(outcomes.values()) == {"created", "unchanged"}
    info = await js.consumer_info(STREAM, PAID_ORDERS_CONSUMER)
    assert info.config.deliver_policy == DeliverPolicy.NEW.value
    assert info.config.filter_subject == "events.order.>"
    assert info.num_pending == 0  # the two paid orders before it are not its business
    await js.publish("events.order.3", b"{}", headers={"Eda-Type": "OrderPaid"})
    assert (await js.consumer_info(STREAM, PAID_ORDERS_CONSUMER)).num_pending == 1


async def test_a_consumer_recreated_at_a_position_is_left_there(nc: NATS) -> None:
    js = nc.jetstream()
    for order_id in (1, 2, 3):
        await js.publish(f"events.order.{order_id}", b"{}")
    await js.delete_consumer(STREAM, PAID_ORDERS_CONSUMER)
    restored = paid_orders_consumer_config()
    restored.deliver_policy, restored.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, 2
    await js.add_consumer(STREAM, restored)  # as app.backup.restore recreates EVENTS' consumers
    outcomes = {o.name: o.action for o in await provision(nc, 1)}
    assert outcomes[f"{STREAM}/{PAID_ORDERS_CONSUMER}"] == "unchanged"
    info = await js.consumer_info(STREAM, PAID_ORDERS_CONSUMER)
    assert (info.config.deliver_policy, info.num_pending) == (DeliverPolicy.BY_START_SEQUENCE.value, 2)
