"""The saga as a view (issue 16): its state folded from the order's events and its own records, in
their one global order, and the pure reaction that decides what to store.

The forward path stores no saga record: the order's own events say what the saga did —
``OrderCreated`` starts it (its first step running), ``OrderPaid`` finishes the charge and starts
shipping, ``OrderShipped`` finishes shipping, ``OrderCompleted`` completes it (and starts the stock
commit of an order with items), an ``OrderCancelled`` the saga did not expect (the user's) starts the
compensation. A ``SagaAdvanced`` record (``events.saga.<order_id>``) is stored only for what no order
event says: a reservation's outcome, a failure or a timeout, a compensation or a commit finishing, a
retry. ``reaction`` finds that out by folding: the record is dropped when the order events the
reaction appends fold to the same saga without it. Records of the earlier design (``SagaStarted``,
a ``SagaAdvanced`` for every step) fold to the same states — a forward transition an order event
implies is applied only while its step is still running — so sagas started before the upgrade go on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from app.domain.common import DomainError
from app.domain.order import ORDER
from app.domain.order.events import (
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderEvent,
    OrderPaid,
    OrderShipped,
)
from app.domain.order.state import OrderState
from app.domain.saga.decider import SAGA, Outcome, Reacting, started_saga
from app.domain.saga.events import React, SagaAdvanced, SagaEvent, SagaStarted, StepName, StepStatus
from app.domain.saga.order_sync import order_commands
from app.domain.saga.state import INITIAL, Saga, SagaState, SagaStatus

type ViewEvent = SagaEvent | OrderEvent

ORDER_EVENTS = tuple(ORDER.event_types)

CHOREOGRAPHED = frozenset({StepName.SHIP})
"""Steps whose worker starts them from an order event (the shipping worker consumes ``OrderPaid``):
the saga sends them no command."""


def _implied(saga: Saga, event: OrderEvent) -> Saga:
    """What an order event says the saga did (nothing when its step is no longer running)."""
    out = Reacting(saga, React(order_id=saga.order_id, trigger_id="", fact=event, at=event.at))
    running = saga.status is SagaStatus.RUNNING
    match event:
        case OrderPaid() if running and out.running(StepName.CHARGE):
            out.finish(StepName.CHARGE, StepStatus.SUCCEEDED, Outcome.CHARGED, payment_id=event.payment_id)
            out.next_forward(StepName.CHARGE)
        case OrderShipped() if running and out.running(StepName.SHIP):
            out.finish(
                StepName.SHIP, StepStatus.SUCCEEDED, Outcome.DISPATCHED, tracking_number=event.tracking_number
            )
        case OrderCompleted() if running:
            out.complete()
        case OrderCancelled() if running:
            out.compensate(f"order cancelled: {event.reason}")
        case _:
            pass
    return out.saga


def evolve_view(state: SagaState, event: ViewEvent) -> SagaState:
    """One event of either stream onto the view."""
    if isinstance(event, ORDER_EVENTS):
        if isinstance(state, Saga):
            return state if isinstance(event, OrderCreated) else _implied(state, event)
        if isinstance(event, OrderCreated):
            return started_saga(event.order_id, event.user_id, event.items, event.amount, event.at)
        return state  # nothing before the creation on one stream: not reached
    if isinstance(event, SagaStarted):
        return _started_late(state, event) if isinstance(state, Saga) else SAGA.evolve(state, event)
    if isinstance(state, Saga) and isinstance(event, SagaAdvanced):
        return SAGA.evolve(state, event)
    return state  # a record without its order: not reached


def _started_late(saga: Saga, started: SagaStarted) -> Saga:
    """An earlier design's ``SagaStarted`` on the saga its ``OrderCreated`` began: that saga started its
    first step when it stored the record — maybe long after the order was created — so the step's
    timeout counts from there, as it did before the upgrade (unless the step has moved on since)."""
    first = saga.steps[0] if len(saga.steps) == 1 else None
    if first is None or first.status is not StepStatus.RUNNING or saga.status is not SagaStatus.RUNNING:
        return saga
    return dataclasses.replace(
        saga,
        steps=(dataclasses.replace(first, started_at=started.at),),
        started_at=started.at,
        seen=saga.seen | {started.trigger_id},
    )


def fold_view(events: Iterable[ViewEvent], state: SagaState = INITIAL) -> SagaState:
    for event in events:
        state = evolve_view(state, event)
    return state


@dataclass(frozen=True, slots=True)
class Reaction:
    """What a reaction decided (``decided``: the saga's changes, for telemetry) and what it stores:
    ``saga_events`` (empty when the order events say it all) and then ``order_events``, in order."""

    decided: list[SagaEvent]
    saga_events: list[SagaEvent]
    order_events: list[OrderEvent]


def order_sync(saga: SagaState, order: OrderState, cmd: React) -> list[OrderEvent]:
    """The order's events that bring it to the status the saga implies, decided by the order's own
    decider (a refusal — the user's cancel came first — ends the list: the saga hears of it as a fact)."""
    out: list[OrderEvent] = []
    for command in order_commands(saga, order, cmd.at):
        try:
            events = list(ORDER.decide(command, order))
        except DomainError:
            break
        out.extend(events)
        order = ORDER.fold(events, order)
    return out


def _same(a: SagaState, b: SagaState) -> bool:
    if isinstance(a, Saga) and isinstance(b, Saga):
        return dataclasses.replace(a, seen=frozenset()) == dataclasses.replace(b, seen=frozenset())
    return a == b


def reaction(cmd: React, saga: SagaState, order: OrderState) -> Reaction:
    """Decide the saga's reaction to ``cmd`` on the view ``saga`` (which already holds every order
    event up to the fact) and the order's state; keep the saga record only where it says more than
    the order events do."""
    if not isinstance(saga, Saga):
        return Reaction([], [], [])
    decided = list(SAGA.decide(cmd, saga))
    after = fold_view(decided, saga)
    order_events = order_sync(after, order, cmd)
    stored = decided
    if decided and _same(fold_view(order_events, saga), fold_view(order_events, after)):
        stored = []
    return Reaction(decided, stored, order_events)


def commands_due(saga: SagaState) -> list[StepName]:
    """The running steps whose command the saga sends (all but the choreographed ones)."""
    if not isinstance(saga, Saga):
        return []
    return [s.name for s in saga.running() if s.name not in CHOREOGRAPHED]


__all__ = [
    "CHOREOGRAPHED",
    "Reaction",
    "ViewEvent",
    "commands_due",
    "evolve_view",
    "fold_view",
    "order_sync",
    "reaction",
]
