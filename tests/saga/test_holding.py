"""Held triggers on a real nats-server: a trigger whose saga still runs stays unacknowledged (no timer
stored), the saga's next reaction acks it, one held past the threshold gets its saga's timer and is
acked, and a redelivered one (its holder crashed) arms the timer at once."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from app.domain.saga import Saga
from app.domain.saga.decider import started_saga
from app.eventstore.consumer import HELD
from app.eventstore.envelope import Metadata
from app.saga.holding import HeldTriggers

META = Metadata(correlation_id="c")
RUNNING = started_saga(1, 9, (), Decimal("1.00"), datetime.now(UTC))


async def _setup(nc: NATS, ack_wait: float = 30.0) -> object:
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="HOLD", subjects=["hold.>"]))
    await js.add_consumer(
        "HOLD", ConsumerConfig(durable_name="h", ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait)
    )
    return await js.pull_subscribe_bind("h", "HOLD")


async def _pending(nc: NATS) -> int:
    return int((await nc.jetstream().consumer_info("HOLD", "h")).num_ack_pending or 0)


async def test_held_until_the_next_reaction_then_acked(nc: NATS) -> None:
    armed: list[int] = []

    async def arm(order_id: int, cause: str, meta: Metadata) -> None:
        armed.append(order_id)

    held = HeldTriggers(arm, step_timeout_s=60)
    sub = await _setup(nc)
    js = nc.jetstream()
    for n in (1, 2):
        await js.publish(f"hold.{n}", b"")
    first, second = await sub.fetch(2, timeout=2)  # type: ignore[attr-defined]
    assert await held.settle(1, first, RUNNING, META, "a") is HELD
    await held.sweep()  # not yet past the threshold
    assert await _pending(nc) == 2  # both fetched: the first held, the second not handled yet
    assert armed == []
    done: Saga = dataclasses.replace(RUNNING, steps=())
    assert await held.settle(1, second, done, META, "b") is None  # nothing runs: ack it, and the first
    await second.ack()
    await asyncio.sleep(0.1)
    assert await _pending(nc) == 0
    assert armed == []
    assert len(held) == 0


async def test_held_past_the_threshold_arms_the_timer_and_acks(nc: NATS) -> None:
    armed: list[int] = []

    async def arm(order_id: int, cause: str, meta: Metadata) -> None:
        armed.append(order_id)

    held = HeldTriggers(arm, step_timeout_s=0.2)  # threshold 0.1 s
    sub = await _setup(nc)
    await nc.jetstream().publish("hold.1", b"")
    [msg] = await sub.fetch(1, timeout=2)  # type: ignore[attr-defined]
    assert await held.settle(7, msg, RUNNING, META, "a") is HELD
    await asyncio.sleep(0.15)
    await held.sweep()
    await asyncio.sleep(0.1)
    assert armed == [7]
    assert await _pending(nc) == 0
    assert len(held) == 0


async def test_a_redelivered_trigger_arms_at_once(nc: NATS) -> None:
    armed: list[int] = []

    async def arm(order_id: int, cause: str, meta: Metadata) -> None:
        armed.append(order_id)

    held = HeldTriggers(arm, step_timeout_s=60)
    sub = await _setup(nc, ack_wait=0.5)
    await nc.jetstream().publish("hold.1", b"")
    [lost] = await sub.fetch(1, timeout=2)  # type: ignore[attr-defined]
    assert lost.metadata.num_delivered == 1  # its holder "crashes": never acked
    [again] = await sub.fetch(1, timeout=3)  # type: ignore[attr-defined]
    assert again.metadata.num_delivered == 2
    assert await held.settle(3, again, RUNNING, META, "b") is None  # the loop acks it
    assert armed == [3]
