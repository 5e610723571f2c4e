"""Pure translation between the saga decider and the outside: which stored events are facts for which
saga, and which worker command a started step sends. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from app.domain.inventory.events import RESERVATION_EVENTS, ReservationReleaseStarted
from app.domain.order.events import OrderCancelled, OrderCompleted, OrderCreated
from app.domain.payment import PAYMENT
from app.domain.saga import React, Saga, Step, StepName, StepTimedOut
from app.domain.shipping import SHIPPING
from app.workers.commands import (
    Charge,
    Commit,
    Item,
    Recall,
    Refund,
    Release,
    Reserve,
    Ship,
    WorkerCommand,
    WorkerName,
)

FACT_TYPES: frozenset[str] = frozenset(
    cls.TYPE
    for cls in (
        OrderCreated,
        OrderCancelled,
        OrderCompleted,
        *(e for e in RESERVATION_EVENTS if e is not ReservationReleaseStarted),  # ...Released follows
        *PAYMENT.event_types,
        *SHIPPING.event_types,
    )
)
"""Event types the saga reacts to; everything else on its subjects is acked unread."""

FACT_SUBJECTS = ["events.order.>", "events.reservation.>", "events.payment.>", "events.shipping.>"]


def order_id_of(subject: str) -> int:
    """``events.<type>.<order_id>`` or ``timeouts.saga.<order_id>[...]`` → the order id."""
    parts = subject.split(".")
    return int(parts[2])


def react_to_event(order_id: int, event_id: str, event: Any, at: datetime) -> React:
    return React(order_id=order_id, trigger_id=event_id, fact=event, at=at)


def timeout_subject(order_id: int) -> str:
    """Where a saga's timer fires: ``timeouts.saga.<order_id>.due`` (one timer per saga)."""
    return f"timeouts.saga.{order_id}.due"


def react_to_timeout(subject: str, at: datetime) -> React | None:
    """A fired per-step timer (``timeouts.saga.<order>.<step>.<attempt>``, armed by earlier versions)
    → the saga's reaction input; ``None`` for a saga timer, whose due steps ``overdue`` finds."""
    parts = subject.split(".")
    if len(parts) != 5:
        return None
    _, _, order, step, attempt = parts
    return step_timed_out(int(order), StepName(step), int(attempt), at)


def step_timed_out(order_id: int, step: StepName, attempt: int, at: datetime) -> React:
    """The reaction to a step attempt's deadline; its trigger id is deterministic (dedupe)."""
    return React(
        order_id=order_id,
        trigger_id=f"timeout:{order_id}:{step.value}:{attempt}",
        fact=StepTimedOut(order_id=order_id, step=step, attempt=attempt),
        at=at,
    )


def deadline_of(step: Step, timeout_s: float, sent: Mapping[str, datetime] | None = None) -> datetime:
    """The step's start + ``timeout_s`` — or, when this process sent its command later (a saga that
    lagged behind its orders: the order's event dates the step), that sending + ``timeout_s``: a
    worker gets its full timeout whatever the saga's backlog was."""
    start = step.started_at
    late = sent.get(step.command_id) if sent is not None else None
    return max(start, late or start) + timedelta(seconds=timeout_s)


def overdue(
    saga: Saga, timeout_s: float, now: datetime, sent: Mapping[str, datetime] | None = None
) -> list[React]:
    """The running steps whose deadline has passed, as timeout reactions."""
    return [
        step_timed_out(saga.order_id, step.name, step.attempt, now)
        for step in sorted(saga.running(), key=lambda s: s.started_at)
        if deadline_of(step, timeout_s, sent) <= now
    ]


def next_deadline(
    saga: Saga, timeout_s: float, now: datetime, sent: Mapping[str, datetime] | None = None
) -> datetime | None:
    """When the saga's timer must fire next: the earliest deadline of a running step (never earlier
    than a second from ``now``: a clock behind the server's must not make the timer fire in a loop);
    ``None`` when nothing runs."""
    deadlines = [deadline_of(step, timeout_s, sent) for step in saga.running()]
    if not deadlines:
        return None
    return max(min(deadlines), now + timedelta(seconds=1))


def worker_command(saga: Saga, step: Step) -> tuple[WorkerName, WorkerCommand]:
    """The command a started step sends to its worker."""
    cid, oid = step.command_id, saga.order_id
    match step.name:
        case StepName.RESERVE:
            return "inventory", Reserve(command_id=cid, order_id=oid, items=_items(saga))
        case StepName.RELEASE:
            return "inventory", Release(command_id=cid, order_id=oid, items=_items(saga))
        case StepName.COMMIT:
            return "inventory", Commit(command_id=cid, order_id=oid, items=_items(saga))
        case StepName.CHARGE:
            return "payment", Charge(command_id=cid, order_id=oid, amount=str(saga.amount))
        case StepName.REFUND:
            return "payment", Refund(command_id=cid, order_id=oid)
        case StepName.SHIP:
            return "shipping", Ship(command_id=cid, order_id=oid, user_id=saga.user_id)
        case StepName.RECALL:
            return "shipping", Recall(command_id=cid, order_id=oid)
        case _:
            raise TypeError(f"no worker runs step {step.name!r}")


def _items(saga: Saga) -> tuple[Item, ...]:
    return tuple(Item(i.product_id, i.quantity) for i in saga.items)
