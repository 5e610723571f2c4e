"""The fulfilment saga's pure decider: ``decide(React(fact), saga) -> saga events``.

Happy path: order created → reserve (skipped without items) → charge → ship → (the runner ships and
completes the order) → order completed → commit the reserved stock. Any failure, timeout or user
cancel moves the saga to ``compensating``: every forward step that was started (finished or still in
flight) gets its compensation — release, refund/void, recall — which the workers make idempotent and
order-independent (a compensation that lands first forbids the late forward effect). When every
compensation succeeded the saga is ``cancelled``. Compensations and the commit retry on timeout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from app.domain.common import Decider, cannot_apply
from app.domain.inventory.events import (
    ReservationCommitted,
    ReservationConfirmed,
    ReservationRejected,
    ReservationReleased,
    ReservedItem,
)
from app.domain.order.events import OrderCancelled, OrderCompleted, OrderCreated, OrderItem
from app.domain.payment.decider import PaymentCharged, PaymentDeclined, PaymentRefunded, PaymentVoided
from app.domain.saga.events import (
    COMPENSATION_OF,
    COMPENSATIONS,
    SAGA_EVENTS,
    CompensationStarted,
    Fact,
    React,
    SagaAdvanced,
    SagaCancelled,
    SagaChange,
    SagaCompleted,
    SagaEvent,
    SagaStarted,
    StepFinished,
    StepName,
    StepStarted,
    StepStatus,
    StepTimedOut,
    from_wire,
    to_wire,
)
from app.domain.saga.state import INITIAL, NoSaga, Saga, SagaState, SagaStatus, Step
from app.domain.shipping.decider import ShipmentCancelled, ShipmentDispatched, ShipmentFailed

FORWARD = (StepName.RESERVE, StepName.CHARGE, StepName.SHIP)


def command_id(order_id: int, step: StepName, attempt: int) -> str:
    """Deterministic: the same step attempt always sends the same command id (dedupe key)."""
    return f"{order_id}:{step.value}:{attempt}"


class Outcome:
    """Outcomes a step's success records (the order events that imply them record the same)."""

    CHARGED = "charged"
    DISPATCHED = "dispatched"


class Reacting:
    """Collects the changes of one reaction while applying them, so later decisions see earlier ones
    (also how ``app.domain.saga.view`` applies what an order event implies)."""

    def __init__(self, saga: Saga, cmd: React) -> None:
        self.saga = saga
        self.cmd = cmd
        self.changes: list[SagaChange] = []

    def add(self, change: SagaChange) -> None:
        self.changes.append(change)
        self.saga = _apply(self.saga, change)

    def start(self, step: StepName) -> None:
        prev = self.saga.step(step)
        attempt = prev.attempt + 1 if prev is not None else 1
        self.add(
            StepStarted(
                step=step,
                attempt=attempt,
                command_id=command_id(self.saga.order_id, step, attempt),
                at=self.cmd.at,
            )
        )

    def running(self, name: StepName) -> bool:
        return _running(self.saga, name)

    def finish(self, step: StepName, status: StepStatus, outcome: str, **ids: str) -> None:
        self.add(StepFinished(step=step, status=status, outcome=outcome, at=self.cmd.at, **ids))

    def compensate(self, reason: str) -> None:
        """Stop going forward; undo every forward step that may have had an effect."""
        self.add(CompensationStarted(reason=reason, at=self.cmd.at))
        for name in FORWARD:
            step = self.saga.step(name)
            if step is None or step.status is StepStatus.FAILED:
                continue  # never started, or definitely did nothing
            if step.status is StepStatus.RUNNING:
                self.finish(name, StepStatus.FAILED, f"abandoned: {reason}")
            self.start(COMPENSATION_OF[name])
        self.maybe_cancelled()

    def maybe_cancelled(self) -> None:
        if self.saga.status is SagaStatus.COMPENSATING and not self.saga.running():
            self.add(SagaCancelled(reason=self.saga.reason or "", at=self.cmd.at))

    def next_forward(self, after: StepName) -> None:
        self.start(FORWARD[FORWARD.index(after) + 1])

    def complete(self) -> None:
        """The order completed: so is the saga; the reserved stock leaves (orders with items)."""
        self.add(SagaCompleted(at=self.cmd.at))
        if self.saga.items:
            self.start(StepName.COMMIT)

    def events(self) -> list[SagaEvent]:
        if not self.changes:
            return []
        wire = tuple(to_wire(c) for c in self.changes)
        return [SagaAdvanced(trigger_id=self.cmd.trigger_id, at=self.cmd.at, changes=wire)]


def _running(saga: Saga, name: StepName) -> bool:
    step = saga.step(name)
    return step is not None and step.status is StepStatus.RUNNING


def _start_saga(cmd: React, created: OrderCreated) -> list[SagaEvent]:
    items = tuple(ReservedItem(product_id=i.product_id, quantity=i.quantity) for i in created.items)
    started = SagaStarted(
        order_id=created.order_id,
        user_id=created.user_id,
        items=items,
        amount=created.amount,
        trigger_id=cmd.trigger_id,
        at=cmd.at,
    )
    return [started]  # evolving it starts the first step (reserve, or charge without items)


def _forward(out: Reacting, fact: Fact) -> None:
    """Reactions while running."""
    saga = out.saga
    match fact:
        case ReservationConfirmed() if _running(saga, StepName.RESERVE):
            out.finish(StepName.RESERVE, StepStatus.SUCCEEDED, "reserved")
            out.next_forward(StepName.RESERVE)
        case ReservationRejected() if _running(saga, StepName.RESERVE):
            out.finish(StepName.RESERVE, StepStatus.FAILED, fact.reason)
            out.compensate(f"reservation failed: {fact.reason}")
        case PaymentCharged() if _running(saga, StepName.CHARGE):
            out.finish(StepName.CHARGE, StepStatus.SUCCEEDED, Outcome.CHARGED, payment_id=fact.payment_id)
            out.next_forward(StepName.CHARGE)
        case PaymentDeclined() if _running(saga, StepName.CHARGE):
            out.finish(StepName.CHARGE, StepStatus.FAILED, fact.reason)
            out.compensate(f"payment declined: {fact.reason}")
        case ShipmentDispatched() if _running(saga, StepName.SHIP):
            out.finish(
                StepName.SHIP, StepStatus.SUCCEEDED, Outcome.DISPATCHED, tracking_number=fact.tracking_number
            )
        case ShipmentFailed() if _running(saga, StepName.SHIP):
            out.finish(StepName.SHIP, StepStatus.FAILED, fact.reason)
            out.compensate(f"shipping failed: {fact.reason}")
        case OrderCompleted() if saga.tracking_number is not None:
            out.complete()
        case OrderCancelled():
            out.compensate(f"order cancelled: {fact.reason}")
        case StepTimedOut() if fact.step in FORWARD:
            out.finish(fact.step, StepStatus.TIMED_OUT, "no answer in time")
            out.compensate(f"{fact.step.value} timed out")
        case _:
            pass  # a late or foreign fact: nothing to do


_COMPENSATION_DONE: dict[type[object], StepName] = {
    ReservationReleased: StepName.RELEASE,
    PaymentRefunded: StepName.REFUND,
    PaymentVoided: StepName.REFUND,
    ShipmentCancelled: StepName.RECALL,
}


def _undoing(out: Reacting, fact: Fact) -> None:
    """Reactions while compensating (late forward outcomes are covered by the compensations)."""
    step = _COMPENSATION_DONE.get(type(fact))
    if step is not None and _running(out.saga, step):
        out.finish(step, StepStatus.SUCCEEDED, type(fact).__name__)
        out.maybe_cancelled()


def _retry_on_timeout(out: Reacting, fact: Fact) -> None:
    """Compensations and the commit must eventually happen: a timeout re-sends them."""
    if isinstance(fact, StepTimedOut) and (fact.step in COMPENSATIONS or fact.step is StepName.COMMIT):
        out.finish(fact.step, StepStatus.TIMED_OUT, "no answer in time, retrying")
        out.start(fact.step)


def decide(cmd: React, state: SagaState) -> list[SagaEvent]:
    """React to one fact. Facts already reacted to (``trigger_id`` seen) produce nothing."""
    match state:
        case NoSaga():
            if isinstance(cmd.fact, OrderCreated):
                return _start_saga(cmd, cmd.fact)
            return []
        case Saga():
            if cmd.trigger_id in state.seen:
                return []
            out = Reacting(state, cmd)
            fact = cmd.fact
            if isinstance(fact, StepTimedOut):
                step = state.step(fact.step)
                if step is None or step.status is not StepStatus.RUNNING or step.attempt != fact.attempt:
                    return []  # finished (or retried) in time
                if fact.step in COMPENSATIONS or fact.step is StepName.COMMIT:
                    _retry_on_timeout(out, fact)
                    return out.events()
            if state.status is SagaStatus.RUNNING:
                _forward(out, fact)
            elif state.status is SagaStatus.COMPENSATING:
                _undoing(out, fact)
            elif isinstance(fact, ReservationCommitted) and _running(state, StepName.COMMIT):
                out.finish(StepName.COMMIT, StepStatus.SUCCEEDED, "committed")
            return out.events()
        case _:
            raise TypeError(f"unknown saga state {state!r}")


def started_saga(
    order_id: int, user_id: int, items: Iterable[ReservedItem | OrderItem], amount: Decimal, at: datetime
) -> Saga:
    """A saga that has just started: its first step (reserve, or charge without items) running."""
    reserved = tuple(ReservedItem(product_id=i.product_id, quantity=i.quantity) for i in items)
    first = StepName.RESERVE if reserved else StepName.CHARGE
    step = Step(
        name=first,
        status=StepStatus.RUNNING,
        attempt=1,
        command_id=command_id(order_id, first, 1),
        started_at=at,
    )
    return Saga(
        order_id=order_id,
        user_id=user_id,
        items=reserved,
        amount=amount,
        status=SagaStatus.RUNNING,
        started_at=at,
        updated_at=at,
        steps=(step,),
    )


def _evolve_started(event: SagaStarted) -> Saga:
    saga = started_saga(event.order_id, event.user_id, event.items, event.amount, event.at)
    return dataclasses.replace(saga, seen=frozenset({event.trigger_id}))


def _replace_step(saga: Saga, step: Step) -> tuple[Step, ...]:
    others = tuple(s for s in saga.steps if s.name != step.name)
    return (*others, step)


def _apply(saga: Saga, change: SagaChange) -> Saga:
    # one dataclasses.replace per change: the fold runs several times per reaction (view.reaction)
    match change:
        case StepStarted():
            step = Step(
                name=change.step,
                status=StepStatus.RUNNING,
                attempt=change.attempt,
                command_id=change.command_id,
                started_at=change.at,
                compensation=change.step in COMPENSATIONS,
            )
            return dataclasses.replace(saga, updated_at=change.at, steps=_replace_step(saga, step))
        case StepFinished():
            current = saga.step(change.step)
            if current is None:
                return dataclasses.replace(saga, updated_at=change.at)
            done = dataclasses.replace(
                current, status=change.status, finished_at=change.at, outcome=change.outcome
            )
            return dataclasses.replace(
                saga,
                updated_at=change.at,
                steps=_replace_step(saga, done),
                payment_id=change.payment_id or saga.payment_id,
                tracking_number=change.tracking_number or saga.tracking_number,
            )
        case CompensationStarted():
            return dataclasses.replace(
                saga, updated_at=change.at, status=SagaStatus.COMPENSATING, reason=change.reason
            )
        case SagaCompleted():
            return dataclasses.replace(saga, updated_at=change.at, status=SagaStatus.COMPLETED)
        case SagaCancelled():
            return dataclasses.replace(saga, updated_at=change.at, status=SagaStatus.CANCELLED)
        case _:
            raise TypeError(f"unknown saga change {change!r}")


def evolve(state: SagaState, event: SagaEvent) -> SagaState:
    match state, event:
        case NoSaga(), SagaStarted():
            return _evolve_started(event)
        case Saga(), SagaAdvanced():
            saga = dataclasses.replace(state, seen=state.seen | {event.trigger_id})
            for change in event.changes:
                saga = _apply(saga, from_wire(change, event.at))
            return saga
        case Saga(), SagaStarted():
            return state
        case _:
            raise cannot_apply(event, state)


SAGA: Decider[React, SagaEvent, SagaState] = Decider(
    aggregate_type="saga",
    decide=decide,
    evolve=evolve,
    initial=INITIAL,
    event_types=SAGA_EVENTS,
    state_types=(NoSaga, Saga),
)
