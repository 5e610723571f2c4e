"""The shipping worker: ``ship`` / ``recall`` commands → the order's Shipping aggregate.

Fault injection: shipments of the users in ``EDA_SHIPPING_FAIL_USER_IDS`` fail (for compensation
tests and demos).
"""

from __future__ import annotations

from app.domain.shipping import SHIPPING, CancelShipment, DispatchShipment, ShippingCommand
from app.eventstore.consumer import PermanentError
from app.eventstore.envelope import Metadata, utcnow
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.settings import Settings
from app.workers.base import CommandHandler, decide_and_append, decider_repo
from app.workers.commands import WorkerCommand


def shipping_handler(
    store: JetStreamEventStore, snapshots: SnapshotStore, settings: Settings
) -> CommandHandler:
    repo = decider_repo(store, SHIPPING, None, settings.snapshot_every)
    failing = settings.shipping_failing_users()

    async def handle(cmd: WorkerCommand, meta: Metadata) -> None:
        def make() -> ShippingCommand:
            at = utcnow()
            if cmd.kind == "ship":
                reason = "carrier rejected the parcel (injected)" if cmd.user_id in failing else None
                return DispatchShipment(
                    order_id=cmd.order_id, command_id=cmd.command_id, at=at, fail_reason=reason
                )
            if cmd.kind == "recall":
                return CancelShipment(order_id=cmd.order_id, command_id=cmd.command_id, at=at)
            raise PermanentError(f"shipping worker cannot {cmd.kind!r}")

        opens = cmd.kind == "ship"  # the first command of the aggregate: decided without a read
        await decide_and_append(
            store, repo, cmd.order_id, make, command_id=cmd.command_id, meta=meta, assume_new=opens
        )

    return handle
