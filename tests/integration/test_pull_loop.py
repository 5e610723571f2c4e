"""The consumers' pull loop against a real nats-server: a handler slower than ack_wait keeps its message
(``+WPI`` heartbeats), messages of one key run in order, failures are redelivered, permanent ones dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from app.eventstore.consumer import PermanentError, PullLoop

pytestmark = pytest.mark.usefixtures("js_clean")


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await js.add_stream(StreamConfig(name="LOOP", subjects=["loop.>"]))
    await js.add_consumer(
        "LOOP", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT, ack_wait=1.0, max_deliver=-1)
    )
    yield client
    await client.close()


async def run_until(loop: PullLoop, done: asyncio.Event, timeout: float = 15.0) -> None:
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.wait_for(done.wait(), timeout)
        await asyncio.sleep(1.5)  # anything redelivered after ack_wait would arrive now
    finally:
        loop.stop()
        await asyncio.wait_for(task, 10)


async def test_a_handler_slower_than_ack_wait_keeps_its_message(nc: NATS) -> None:
    deliveries: list[int] = []
    done = asyncio.Event()

    async def slow(msg: Msg) -> None:
        deliveries.append(msg.metadata.num_delivered)
        await asyncio.sleep(3.0)  # three times ack_wait
        done.set()

    await nc.jetstream().publish("loop.1", b"x")
    await run_until(PullLoop(nc, "LOOP", "c", slow, heartbeat_s=0.3), done)
    assert deliveries == [1]


async def test_messages_of_one_key_run_in_order_and_failures_are_retried(nc: NATS) -> None:
    js = nc.jetstream()
    for i in range(20):
        await js.publish(f"loop.{i % 2}", str(i).encode())
    seen: dict[str, list[int]] = {"0": [], "1": []}
    failed: set[int] = set()
    done = asyncio.Event()

    async def handle(msg: Msg) -> None:
        n = int(msg.data)
        if n == 7 and n not in failed:
            failed.add(n)
            raise RuntimeError("first attempt fails")
        if n == 8:
            raise PermanentError("never")
        seen[msg.subject.split(".")[1]].append(n)
        if sum(map(len, seen.values())) == 19:
            done.set()

    await run_until(PullLoop(nc, "LOOP", "c", handle, key=lambda m: m.subject), done)
    assert seen["0"] == [0, 2, 4, 6, 10, 12, 14, 16, 18]
    assert sorted(seen["1"]) == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    info = await js.consumer_info("LOOP", "c")
    assert info.num_ack_pending == 0
    assert info.num_pending == 0
