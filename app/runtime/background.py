"""Composition roots of the background roles: ``eda saga`` and ``eda worker ...`` alone (health server,
SIGTERM), and both inside ``eda dev`` (until cancelled). Each builds its event store and snapshot store
here — the roles themselves only see the ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS

from app.eventstore.consumer import PullLoop
from app.eventstore.jetstream import open_event_store
from app.eventstore.snapshots import SnapshotStore
from app.process.role import serve_role, start_role
from app.saga.runner import saga_loops
from app.settings import Settings
from app.workers.commands import WORKERS, WorkerName
from app.workers.runner import worker_loops


async def saga_setup(nc: NATS, settings: Settings) -> list[PullLoop]:
    """The orchestrator's streams, consumers and (not yet running) loops on ``nc``."""
    store = await open_event_store(nc, settings)
    return (await saga_loops(nc, store, settings))[1]


async def workers_setup(nc: NATS, names: tuple[WorkerName, ...], settings: Settings) -> list[PullLoop]:
    """The workers' streams, consumers and (not yet running) loops on ``nc``."""
    store = await open_event_store(nc, settings)
    snapshots = await SnapshotStore.open(nc.jetstream())
    return await worker_loops(nc, names, settings, store, snapshots)


async def run_saga(settings: Settings) -> None:
    """``eda saga``: the orchestrator alone."""
    await serve_role("saga", lambda nc: saga_setup(nc, settings), settings)


async def run_workers(names: tuple[WorkerName, ...], settings: Settings) -> None:
    """``eda worker ...``: the named workers in one process."""
    await serve_role("worker-" + "+".join(names), lambda nc: workers_setup(nc, names, settings), settings)


async def saga_role(settings: Settings) -> None:
    """The orchestrator inside another process (``eda dev``): runs until cancelled, no health server."""
    await _run_until_cancelled("saga", lambda nc: saga_setup(nc, settings), settings)


async def workers_role(settings: Settings, names: tuple[WorkerName, ...] = WORKERS) -> None:
    """The workers inside another process (``eda dev``): run until cancelled, no health server."""
    await _run_until_cancelled("workers", lambda nc: workers_setup(nc, names, settings), settings)


async def _run_until_cancelled(
    role: str, setup: Callable[[NATS], Awaitable[list[PullLoop]]], settings: Settings
) -> None:
    nc, loops = await start_role(role, setup, settings)  # retried while JetStream is unavailable
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        await asyncio.gather(*tasks)
    finally:
        for loop in loops:
            loop.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        await nc.close()
