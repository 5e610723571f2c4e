"""``eda worker <name>``: run one worker type (or several, for ``eda dev``) until stopped."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS

from app.eventstore.consumer import PullLoop
from app.process.role import open_store, serve_role, start_role
from app.settings import Settings
from app.workers.base import BuildHandler, start_worker
from app.workers.commands import WORKERS, WorkerName


def handler_factory(name: WorkerName) -> BuildHandler:
    if name == "inventory":
        from app.workers.inventory import inventory_handler

        return inventory_handler
    if name == "payment":
        from app.workers.payment import payment_handler

        return payment_handler
    from app.workers.shipping import shipping_handler

    return shipping_handler


async def worker_loops(nc: NATS, names: tuple[WorkerName, ...], settings: Settings) -> list[PullLoop]:
    """The pull loops of ``names`` on one connection (not yet running)."""
    store, snapshots = await open_store(nc, settings)
    return [
        await start_worker(nc, n, handler_factory(n)(store, snapshots, settings), settings) for n in names
    ]


async def run_workers(names: tuple[WorkerName, ...], settings: Settings) -> None:
    async def loops(nc: NATS) -> list[PullLoop]:
        return await worker_loops(nc, names, settings)

    await serve_role("worker-" + "+".join(names), loops, settings)


async def workers_role(settings: Settings, names: tuple[WorkerName, ...] = WORKERS) -> None:
    """The workers inside another process (``eda dev``): run until cancelled, no health server."""

    async def setup(nc: NATS) -> list[PullLoop]:
        return await worker_loops(nc, names, settings)

    nc, loops = await start_role("workers", setup, settings)  # retried while JetStream is unavailable
    tasks: list[asyncio.Task[None]] = []
    try:
        tasks = [asyncio.create_task(loop.run()) for loop in loops]
        await asyncio.gather(*tasks)
    finally:
        for loop in loops:
            loop.stop()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        await nc.close()
