"""Running a background role (saga, workers): connect, open the event store, serve health on
``EDA_HEALTH_PORT``, run pull loops until SIGTERM/SIGINT, then finish in-flight messages and drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS

from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.connection import connect_nats
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.health import CheckResult, serve_health
from app.messaging import PullLoop
from app.settings import Settings

log = logging.getLogger(__name__)


async def open_store(nc: NATS, settings: Settings) -> tuple[JetStreamEventStore, SnapshotStore]:
    store = await JetStreamEventStore.open(
        nc, EventCodec(all_event_types()), replicas=settings.stream_replicas
    )
    snapshots = await SnapshotStore.open(nc.jetstream(), replicas=settings.stream_replicas)
    return store, snapshots


async def serve_role(
    role: str, loops: Callable[[NATS], Awaitable[list[PullLoop]]], settings: Settings
) -> None:
    """Run ``loops`` until SIGTERM/SIGINT, then finish in-flight messages, drain and close."""
    nc = await connect_nats(settings, name=f"eda-{role}")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    async def checks() -> dict[str, CheckResult]:
        return {"nats": CheckResult(nc.is_connected, "connected" if nc.is_connected else "disconnected")}

    try:
        pulls = await loops(nc)
        async with serve_health(settings.health_port, checks):
            tasks = [asyncio.create_task(p.run()) for p in pulls]
            log.info("%s running", role)
            waiter = asyncio.create_task(stopping.wait())
            await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for p in pulls:
                p.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            waiter.cancel()
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
    log.info("%s stopped", role)
