"""Sagas of the earlier design read by the lean one (issue 16): the earlier runner's protocol replayed on
the in-memory store — per fact, the saga's record on ``events.saga.<id>`` (``SagaStarted``, then a
``SagaAdvanced`` for every step, without ``order_version``), then the order sync, one transition per
append — and at EVERY point of it (a crash may stop the old runner anywhere) the view the new saga
folds (``app.service.sagaview.merged`` + ``fold_recorded``) holds the steps the old ``SAGA.fold`` of the
records held. Where an order event the old saga reacts to is stored and its reaction is not yet, the
view is already where that reaction takes the saga (the new saga reads that event as part of its
state); that reaction is the one the old decider makes, so the expectation is still the old fold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.domain.inventory.events import (
    ReservationCommitted,
    ReservationConfirmed,
    ReservationRejected,
    ReservationReleased,
    ReservedItem,
)
from app.domain.order import ORDER, CancelOrder, CreateOrder, OrderItem
from app.domain.payment.decider import PaymentCharged, PaymentDeclined, PaymentRefunded
from app.domain.saga import INITIAL, SAGA, Fact, React, Saga, SagaEvent, StepName, StepTimedOut, command_id
from app.domain.shipping.decider import ShipmentCancelled, ShipmentDispatched, ShipmentFailed
from app.eventstore.envelope import NEW, Metadata, NewEvent, RecordedEvent, StreamId
from app.eventstore.memory import InMemoryEventStore
from app.saga.fulfilment import FACT_TYPES
from app.service.sagaview import EMPTY, fold_recorded, merged
from tests.support.stores import memory_store

OID = 7
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
META = Metadata(correlation_id="upgrade")
ITEMS = (ReservedItem(product_id=3, quantity=2),)
SAGA_STREAM, ORDER_STREAM = StreamId("saga", str(OID)), StreamId("order", str(OID))


def cid(step: StepName, attempt: int = 1) -> str:
    return command_id(OID, step, attempt)


def shape(state: Any) -> tuple[Any, ...]:
    """What the two folds must agree on: status, reason, ids and every step (timestamps and the seen
    trigger ids differ by design: the view starts the saga from ``OrderCreated``)."""
    assert isinstance(state, Saga), state
    steps = sorted(
        (s.name.value, s.status.value, s.attempt, s.command_id, s.compensation, s.outcome)
        for s in state.steps
    )
    return (
        state.status,
        state.reason,
        state.payment_id,
        state.tracking_number,
        state.items,
        state.amount,
        steps,
    )


@dataclass
class OldRunner:
    """The earlier design's runner on the twin (decide on the saga's records alone → record → sync);
    ``points`` holds, after every append, the view and the old fold it must equal."""

    store: InMemoryEventStore
    points: list[tuple[str, Any, Any]] = field(default_factory=list)

    async def streams(self) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
        return (await self.store.load(SAGA_STREAM)).events, (await self.store.load(ORDER_STREAM)).events

    async def old_state(self) -> Any:
        records, _ = await self.streams()
        return SAGA.fold([r.event for r in records])

    async def order(self, command: Any) -> None:
        """A user's (or the API's) command on the order; the saga then reacts to the event."""
        _, orders = await self.streams()
        state = ORDER.fold([o.event for o in orders])
        for event in ORDER.decide(command, state):
            await self._append_order(event)

    async def fact(self, fact: Fact, trigger_id: str) -> None:
        """A worker's event (or a fired timer) delivered to the old saga."""
        await self._react(fact, trigger_id)

    async def _decide(self, fact: Fact, trigger_id: str) -> list[SagaEvent]:
        return list(
            SAGA.decide(React(order_id=OID, trigger_id=trigger_id, fact=fact, at=AT), await self.old_state())
        )

    async def _react(self, fact: Fact, trigger_id: str) -> None:
        for event in await self._decide(fact, trigger_id):
            at = (await self.store.load(SAGA_STREAM)).position
            await self.store.append(SAGA_STREAM, [NewEvent(event=event)], at, META)
            await self._point(f"record after {type(fact).__name__}")
        await self._sync()

    async def _sync(self) -> None:
        from app.domain.saga import order_commands

        while True:
            _, orders = await self.streams()
            state = ORDER.fold([o.event for o in orders])
            commands = order_commands(await self.old_state(), state, AT)
            if not commands:
                return
            [event] = ORDER.decide(commands[0], state)
            await self._append_order(event)

    async def _append_order(self, event: Any) -> None:
        at = (await self.store.load(ORDER_STREAM)).position
        await self.store.append(ORDER_STREAM, [NewEvent(event=event)], at, META)
        _, orders = await self.streams()
        stored = orders[-1]
        if type(event).TYPE in FACT_TYPES:  # the old saga reacts to it: the view already holds that
            pending = await self._decide(event, stored.envelope.event_id)
            await self._point(f"{type(event).__name__} stored, not yet reacted to", pending)
            await self._react(event, stored.envelope.event_id)
        else:
            await self._point(f"{type(event).__name__} stored")

    async def _point(self, where: str, pending: Sequence[SagaEvent] = ()) -> None:
        records, orders = await self.streams()
        view = fold_recorded(EMPTY, merged(records, orders)).saga
        old = SAGA.fold([*(r.event for r in records), *pending])
        self.points.append((where, view, old))


def create(*, items: tuple[ReservedItem, ...] = (), amount: str = "50.00") -> CreateOrder:
    lines = tuple(OrderItem(product_id=i.product_id, quantity=i.quantity) for i in items)
    return CreateOrder(order_id=OID, user_id=1, items=lines, amount=Decimal(amount), at=AT)


def created_event() -> Any:
    [event] = ORDER.decide(create(items=ITEMS), ORDER.initial)
    return event


def charged() -> PaymentCharged:
    return PaymentCharged(
        order_id=OID, payment_id="pay-1", amount=Decimal("50.00"), command_id=cid(StepName.CHARGE), at=AT
    )


def dispatched() -> ShipmentDispatched:
    return ShipmentDispatched(order_id=OID, tracking_number="trk-1", command_id=cid(StepName.SHIP), at=AT)


def confirmed() -> ReservationConfirmed:
    return ReservationConfirmed(order_id=OID, items=ITEMS, command_id=cid(StepName.RESERVE), at=AT)


def released() -> ReservationReleased:
    return ReservationReleased(order_id=OID, items=ITEMS, command_id=cid(StepName.RELEASE), at=AT)


def refunded() -> PaymentRefunded:
    return PaymentRefunded(
        order_id=OID,
        payment_id="pay-1",
        amount=Decimal("50.00"),
        reason="saga",
        command_id=cid(StepName.REFUND),
        at=AT,
    )


SCENARIOS: dict[str, tuple[tuple[Any, ...], list[Any]]] = {
    "seed order completes": ((), [charged(), dispatched()]),
    "order with items completes and commits": (
        ITEMS,
        [
            confirmed(),
            charged(),
            dispatched(),
            ReservationCommitted(order_id=OID, items=ITEMS, command_id=cid(StepName.COMMIT), at=AT),
        ],
    ),
    "payment declined": (
        (),
        [
            PaymentDeclined(
                order_id=OID, amount=Decimal(950), reason="limit", command_id=cid(StepName.CHARGE), at=AT
            )
        ],
    ),
    "stock short": (
        ITEMS,
        [
            ReservationRejected(
                order_id=OID, reason="short", short=ITEMS, command_id=cid(StepName.RESERVE), at=AT
            )
        ],
    ),
    "shipment fails after items were reserved": (
        ITEMS,
        [
            confirmed(),
            charged(),
            ShipmentFailed(order_id=OID, reason="carrier", command_id=cid(StepName.SHIP), at=AT),
            released(),
            refunded(),
        ],
    ),
    "the user cancels a paid order": (
        (),
        [
            charged(),
            CancelOrder(order_id=OID, reason="changed my mind", at=AT),
            refunded(),
            ShipmentCancelled(
                order_id=OID, tracking_number=None, reason="saga", command_id=cid(StepName.RECALL), at=AT
            ),
        ],
    ),
    "an old per-saga timer fires the charge out": (
        (),
        [StepTimedOut(order_id=OID, step=StepName.CHARGE, attempt=1), refunded()],
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_old_records_fold_to_the_old_state_at_every_point(name: str) -> None:
    items, steps = SCENARIOS[name]
    runner = OldRunner(memory_store())
    await runner.order(create(items=items, amount="50.00"))
    for n, step in enumerate(steps):
        if isinstance(step, CancelOrder):
            await runner.order(step)
        else:
            await runner.fact(step, f"fact-{n}")
    assert len(runner.points) >= 2 + len(steps)
    for where, view, old in runner.points:
        assert shape(view) == shape(old), f"{name}: at '{where}'"
    final = runner.points[-1][2]
    assert final.terminal, f"{name}: the old protocol did not finish: {final}"
    assert not final.running(), f"{name}: the old protocol left steps running: {final}"


async def test_an_old_sagas_first_step_counts_its_timeout_from_when_the_old_saga_started_it() -> None:
    """The old saga started the first step when it reacted to the order (``SagaStarted.at``), which may be
    long after the order was created (a backlog): the step's deadline counts from there, as before the
    upgrade, not from ``OrderCreated.at``."""
    runner = OldRunner(memory_store())
    late = AT + timedelta(seconds=40)
    await runner.store.append(ORDER_STREAM, [NewEvent(event=created_event())], NEW, META)
    [created] = (await runner.store.load(ORDER_STREAM)).events
    react = React(order_id=OID, trigger_id=created.envelope.event_id, fact=created.event, at=late)
    await runner.store.append(
        SAGA_STREAM, [NewEvent(event=e) for e in SAGA.decide(react, INITIAL)], NEW, META
    )
    records, orders = await runner.streams()
    view = fold_recorded(EMPTY, merged(records, orders)).saga
    old = SAGA.fold([r.event for r in records])
    assert isinstance(view, Saga)
    assert isinstance(old, Saga)
    assert [s.started_at for s in view.steps] == [s.started_at for s in old.steps] == [late]
    assert view.seen >= old.seen  # the old start is a seen trigger
