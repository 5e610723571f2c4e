"""The payment worker: ``charge`` / ``refund`` commands → the order's Payment aggregate.

Fault injection (documented in docs/saga.md): ``EDA_PAYMENT_FAULT_DELAY_S`` waits before a charge (to
trigger saga timeouts); ``EDA_PAYMENT_FAULT_FAIL_RATE`` makes that share of deliveries fail
transiently (nak → redelivered with backoff).
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from decimal import Decimal

from app.domain.common import money
from app.domain.payment import PAYMENT, ChargePayment, RefundPayment
from app.eventstore.envelope import Metadata
from app.eventstore.ports import EventStore
from app.eventstore.snapshots import SnapshotStore
from app.settings import Settings
from app.workers.base import WorkerHandler, aggregate_worker, refused
from app.workers.commands import Charge, Refund, WorkerCommand


class InjectedFault(Exception):
    """A transient failure injected by ``EDA_PAYMENT_FAULT_FAIL_RATE``."""


def payment_command(
    cmd: WorkerCommand, at: datetime, decline_above: Decimal
) -> ChargePayment | RefundPayment:
    """The Payment aggregate's command for a worker command (pure)."""
    match cmd:
        case Charge():
            amount = money(cmd.amount)
            return ChargePayment(
                order_id=cmd.order_id,
                amount=amount,
                command_id=cmd.command_id,
                at=at,
                decline_above=decline_above,
            )
        case Refund():
            return RefundPayment(order_id=cmd.order_id, command_id=cmd.command_id, at=at)
        case _:
            raise refused("payment", cmd)


def payment_handler(store: EventStore, snapshots: SnapshotStore | None, settings: Settings) -> WorkerHandler:
    limit = Decimal(str(settings.payment_decline_above))
    payments = aggregate_worker(store, PAYMENT, lambda cmd, at: payment_command(cmd, at, limit), Charge)

    async def handle(cmd: WorkerCommand, meta: Metadata) -> None:
        if settings.payment_fault_fail_rate and random.random() < settings.payment_fault_fail_rate:
            raise InjectedFault("injected payment failure")
        if isinstance(cmd, Charge) and settings.payment_fault_delay_s:
            await asyncio.sleep(settings.payment_fault_delay_s)
        await payments(cmd, meta)

    return handle
