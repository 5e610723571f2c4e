"""The payment worker: ``charge`` / ``refund`` commands → the order's Payment aggregate.

Fault injection (documented in docs/saga.md): ``EDA_PAYMENT_FAULT_DELAY_S`` waits before a charge (to
trigger saga timeouts); ``EDA_PAYMENT_FAULT_FAIL_RATE`` makes that share of deliveries fail
transiently (nak → redelivered with backoff).
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from app.domain.common import money
from app.domain.payment import PAYMENT, ChargePayment, PaymentCommand, RefundPayment
from app.eventstore.consumer import PermanentError
from app.eventstore.envelope import Metadata, utcnow
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.settings import Settings
from app.workers.base import CommandHandler, decide_and_append, decider_repo
from app.workers.commands import WorkerCommand


class InjectedFault(Exception):
    """A transient failure injected by ``EDA_PAYMENT_FAULT_FAIL_RATE``."""


def payment_handler(
    store: JetStreamEventStore, snapshots: SnapshotStore, settings: Settings
) -> CommandHandler:
    repo = decider_repo(store, PAYMENT, None, settings.snapshot_every)
    limit = Decimal(str(settings.payment_decline_above))

    async def handle(cmd: WorkerCommand, meta: Metadata) -> None:
        if settings.payment_fault_fail_rate and random.random() < settings.payment_fault_fail_rate:
            raise InjectedFault("injected payment failure")
        if cmd.kind == "charge" and settings.payment_fault_delay_s:
            await asyncio.sleep(settings.payment_fault_delay_s)

        def make() -> PaymentCommand:
            at = utcnow()
            if cmd.kind == "charge":
                return ChargePayment(
                    order_id=cmd.order_id,
                    amount=money(cmd.amount),
                    command_id=cmd.command_id,
                    at=at,
                    decline_above=limit,
                )
            if cmd.kind == "refund":
                return RefundPayment(order_id=cmd.order_id, command_id=cmd.command_id, at=at)
            raise PermanentError(f"payment worker cannot {cmd.kind!r}")

        opens = cmd.kind == "charge"  # the first command of the aggregate: decided without a read
        await decide_and_append(
            store, repo, cmd.order_id, make, command_id=cmd.command_id, meta=meta, assume_new=opens
        )

    return handle
