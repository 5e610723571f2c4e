"""The shipping worker: ``ship`` / ``recall`` commands → the order's Shipping aggregate. An ``OrderPaid``
becomes the same ``ship`` (``app.workers.paid_orders``).

Fault injection: shipments of the users in ``EDA_SHIPPING_FAIL_USER_IDS`` fail (for compensation
tests and demos).
"""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime

from app.domain.shipping import SHIPPING, CancelShipment, DispatchShipment
from app.eventstore.ports import EventStore
from app.eventstore.snapshots import SnapshotStore
from app.settings import Settings
from app.workers.base import WorkerHandler, aggregate_worker, refused
from app.workers.commands import Recall, Ship, WorkerCommand


def shipping_command(
    cmd: WorkerCommand, at: datetime, failing: Container[int]
) -> DispatchShipment | CancelShipment:
    """The Shipping aggregate's command for a worker command (pure)."""
    match cmd:
        case Ship():
            reason = "carrier rejected the parcel (injected)" if cmd.user_id in failing else None
            return DispatchShipment(
                order_id=cmd.order_id, command_id=cmd.command_id, at=at, fail_reason=reason
            )
        case Recall():
            return CancelShipment(order_id=cmd.order_id, command_id=cmd.command_id, at=at)
        case _:
            raise refused("shipping", cmd)


def shipping_handler(store: EventStore, snapshots: SnapshotStore | None, settings: Settings) -> WorkerHandler:
    failing = settings.shipping_failing_users()
    return aggregate_worker(store, SHIPPING, lambda cmd, at: shipping_command(cmd, at, failing), Ship)
