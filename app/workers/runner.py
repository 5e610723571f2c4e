"""Which worker module serves which worker name, and the pull loops of a set of workers on one
connection. ``app.runtime.background`` runs them (``eda worker``, ``eda dev``)."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from app.eventstore.consumer import KeyedLocks, PullLoop
from app.eventstore.ports import EventStore
from app.eventstore.snapshots import SnapshotStore
from app.settings import Settings
from app.workers.base import BuildHandler, start_worker
from app.workers.commands import WorkerName
from app.workers.paid_orders import start_paid_orders


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
    """The pull loops of ``names`` on one connection (not yet running): each worker's ``COMMANDS``
    loop, and the shipping worker's ``OrderPaid`` loop beside it (sharing its per-order locks)."""
    loops = []
    for name in names:
        handler, locks = handler_factory(name)(store, snapshots, settings), KeyedLocks()
        loops.append(await start_worker(nc, name, handler, settings, locks))
        if name == "shipping":
            loops.append(await start_paid_orders(nc, store, handler, settings, locks))
    return loops
