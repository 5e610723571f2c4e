"""Pure translation between the saga decider and the outside: which stored events are facts for which
saga, and which worker command a started step sends. No I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain.inventory.events import RESERVATION_EVENTS
from app.domain.order.events import OrderCancelled, OrderCompleted, OrderCreated
from app.domain.payment import PAYMENT
from app.domain.saga import React, Saga, Step, StepName, StepTimedOut
from app.domain.shipping import SHIPPING
from app.messaging import Item, WorkerCommand, WorkerName

FACT_TYPES: frozenset[str] = frozenset(
    cls.TYPE
    for cls in (
        OrderCreated,
        OrderCancelled,
        OrderCompleted,
        *RESERVATION_EVENTS,
        *PAYMENT.event_types,
        *SHIPPING.event_types,
    )
)
"""Event types the saga reacts to; everything else on its subjects is acked unread."""

FACT_SUBJECTS = ["events.order.>", "events.reservation.>", "events.payment.>", "events.shipping.>"]

ROUTES: dict[StepName, tuple[WorkerName, str]] = {
    StepName.RESERVE: ("inventory", "reserve"),
    StepName.RELEASE: ("inventory", "release"),
    StepName.COMMIT: ("inventory", "commit"),
    StepName.CHARGE: ("payment", "charge"),
    StepName.REFUND: ("payment", "refund"),
    StepName.SHIP: ("shipping", "ship"),
    StepName.RECALL: ("shipping", "recall"),
}


def order_id_of(subject: str) -> int:
    """``events.<type>.<order_id>`` or ``timeouts.saga.<order_id>.<step>.<attempt>`` → the order id."""
    parts = subject.split(".")
    return int(parts[2])


def react_to_event(order_id: int, event_id: str, event: Any, at: datetime) -> React:
    return React(order_id=order_id, trigger_id=event_id, fact=event, at=at)


def timeout_subject(order_id: int, step: StepName, attempt: int) -> str:
    return f"timeouts.saga.{order_id}.{step.value}.{attempt}"


def react_to_timeout(subject: str, at: datetime) -> React:
    """A fired timer's subject → the saga's reaction input (trigger id is deterministic)."""
    _, _, order, step, attempt = subject.split(".")
    name = StepName(step)
    return React(
        order_id=int(order),
        trigger_id=f"timeout:{order}:{step}:{attempt}",
        fact=StepTimedOut(order_id=int(order), step=name, attempt=int(attempt)),
        at=at,
    )


def worker_command(saga: Saga, step: Step) -> tuple[WorkerName, WorkerCommand]:
    """The command a started step sends to its worker."""
    worker, kind = ROUTES[step.name]
    return worker, WorkerCommand(
        command_id=step.command_id,
        kind=kind,
        order_id=saga.order_id,
        user_id=saga.user_id,
        amount=str(saga.amount),
        items=tuple(Item(i.product_id, i.quantity) for i in saga.items) if worker == "inventory" else (),
    )
