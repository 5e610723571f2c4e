"""Two of three nodes SIGKILLed (the stream has no quorum, nothing answers appends: "no responders")
for a few seconds, then restarted: an application append in flight waits it out inside the store —
no error reaches the caller, nothing is lost or duplicated."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from nats.aio.client import Client as NATS

from app.dev.cluster import NatsCluster
from app.eventstore.envelope import NEW, NewEvent, Position, StreamId
from app.eventstore.jetstream import STREAM, JetStreamEventStore, events_stream_config
from tests.support.chaos import current_leader, record
from tests.support.workload import META, ChaosTick, chaos_codec

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

DOWN_S = 3.0


async def test_appends_wait_out_a_quorum_loss(
    cluster: NatsCluster, connect: Callable[[str], Awaitable[NATS]]
) -> None:
    admin = await connect("chaos-admin")
    await admin.jetstream().add_stream(events_stream_config(3))  # R3, as `eda provision --replicas 3`
    store = await JetStreamEventStore.open(admin, chaos_codec())
    leader = await current_leader(admin, STREAM)
    survivor = next(n for n in cluster.nodes if n != leader)
    writer = await connect("chaos-quorum")
    wstore = JetStreamEventStore(writer, chaos_codec())
    stream = StreamId("chaos", "quorum")
    position: Position = NEW
    stop = asyncio.Event()
    stalls: list[float] = []
    errors: list[str] = []
    ids: list[str] = []

    async def append_loop() -> None:
        nonlocal position
        n = 0
        while not stop.is_set():
            event = NewEvent(event=ChaosTick(writer=0, n=n))
            t = time.monotonic()
            try:
                result = await wstore.append(stream, [event], position, META)
            except Exception as exc:
                errors.append(repr(exc))
                return
            stalls.append(time.monotonic() - t)
            position = result.position
            ids.append(event.event_id)
            n += 1

    loop = asyncio.create_task(append_loop())
    await asyncio.sleep(1.0)
    down = [n for n in cluster.nodes if n != survivor]
    for name in down:
        cluster.kill(name)
    await asyncio.sleep(DOWN_S)
    for name in down:
        await cluster.restart(name)
    await asyncio.sleep(3.0)
    stop.set()
    await loop
    await cluster.wait_converged(STREAM)
    loaded = await store.load(stream)
    stored = [e.envelope.event_id for e in loaded.events]
    figures = {
        "killed": down,
        "down_s": DOWN_S,
        "appends_acknowledged": len(ids),
        "errors_seen_by_caller": errors,
        "max_append_stall_s": round(max(stalls), 3),
        "lost": len(set(ids) - set(stored)),
        "duplicated": len(stored) - len(set(stored)),
    }
    record("quorum-loss", figures)
    assert errors == []
    assert stored == ids
    await wstore.close()
    await store.close()
