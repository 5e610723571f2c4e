"""Which worker module serves which worker name, and the pull loops of a set of workers on one
connection. ``app.runtime.background`` runs them (``eda worker``, ``eda dev``)."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from app.eventstore.consumer import PullLoop
from app.eventstore.ports import EventStore
from app.eventstore.snapshots import SnapshotStore
from app.settings import Settings
from app.workers.base import BuildHandler, start_worker
from app.workers.commands import WorkerName


def handler_factory(name: WorkerName) -> BuildHandler:
    if name == "inventory":
        from app.workers.inventory import inventory_handler

        return inventory_handler
    if name == "payment":
        from app.workers.payment import payment_handler

        return payment_handler
    from app.workers.shipping import shipping_handler

    return shipping_handler


async def worker_loops(
    nc: NATS,
    names: tuple[WorkerName, ...],
    settings: Settings,
    store: EventStore,
    snapshots: SnapshotStore | None,
) -> list[PullLoop]:
    """The pull loops of ``names`` on one connection (not yet running)."""
    return [
        await start_worker(nc, n, handler_factory(n)(store, snapshots, settings), settings) for n in names
    ]
