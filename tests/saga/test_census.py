"""The saga census reads the durable timer index on a real nats-server: armed timers are sagas in
flight, a timer the server fired and nobody handled becomes overdue after the grace period, a handled
or disarmed one is gone; and a timer that really fires moves from armed to fired."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from nats.aio.client import Client as NATS

from app.eventstore.envelope import Metadata
from app.eventstore.required import require_consumer
from app.saga import census, timeouts

META = Metadata(correlation_id="c")


async def _timers(nc: NATS) -> None:
    """The timer stream and the saga's consumer, as `eda provision` made them (js_clean provisions)."""
    await require_consumer(nc.jetstream(), timeouts.TIMERS_STREAM, timeouts.TIMEOUTS_CONSUMER)


async def test_no_saga_ever_ran_is_an_empty_census(nc: NATS) -> None:
    taken = await census.take(nc.jetstream())
    assert taken.in_flight() == frozenset()
    assert taken.overdue() == []


async def test_armed_fired_handled_and_disarmed_timers(nc: NATS) -> None:
    await _timers(nc)
    js = nc.jetstream()
    later = datetime.now(UTC) + timedelta(minutes=5)
    await timeouts.arm(js, 11, later, "t1", META)
    await timeouts.arm(js, 12, later, "t2", META)
    await timeouts.arm(js, 12, later + timedelta(minutes=1), "t3", META)  # re-armed: still one timer
    # a timer the server fired that the orchestrator has not handled (it is down)
    await js.publish("timeouts.saga.13.due", b"", headers={"Nats-Msg-Id": "fired-13"})
    taken = await census.take(js)
    assert taken.in_flight() == {11, 12, 13}
    assert sorted(t.order_id for t in taken.timers) == [11, 12, 13]
    assert next(t for t in taken.timers if t.order_id == 12).due == (later + timedelta(minutes=1)).replace(
        microsecond=0
    ) + timedelta(seconds=1)
    assert taken.overdue() == []  # fired a moment ago: within the grace period
    assert [t.order_id for t in taken.overdue(grace_s=0)] == [13]
    assert taken.overdue_seconds(grace_s=0) > 0
    sub = await js.pull_subscribe("timeouts.saga.>", durable=timeouts.TIMEOUTS_CONSUMER)
    for msg in await sub.fetch(1, timeout=2):
        await msg.ack_sync()  # handled
    await timeouts.disarm(js, 11)  # the saga finished
    taken = await census.take(js)
    assert taken.in_flight() == {12}
    assert taken.overdue(grace_s=0) == []


async def test_a_timer_that_fires_moves_from_armed_to_fired(nc: NATS) -> None:
    await _timers(nc)
    js = nc.jetstream()
    await timeouts.arm(js, 21, datetime.now(UTC), "t", META)  # due within a second
    for _ in range(50):
        taken = await census.take(js)
        if [t.fired for t in taken.timers] == [True]:
            break
        await asyncio.sleep(0.1)
    assert [(t.order_id, t.fired) for t in taken.timers] == [(21, True)]
