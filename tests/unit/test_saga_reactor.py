"""The saga's reactions on the in-memory event store and outbox, with the real workers: a whole order
in milliseconds — completion, compensation, redelivery, a fired timer, and an order stream so
contended that syncing it must give up loudly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.domain.order import ORDER, CreateOrder, OrderCreated, OrderItem
from app.domain.order.events import OrderPaid
from app.domain.saga import Saga, SagaStatus
from app.eventstore.envelope import Metadata, StreamId
from app.eventstore.ports import EventStore
from app.saga.dispatch import InMemoryDispatch
from app.saga.fulfilment import FACT_TYPES, timeout_subject
from app.saga.reactor import SagaReactor
from app.service.handler import CommandHandler, RetriesExhausted, RetryPolicy
from app.service.sagaview import SagaViews
from app.settings import Settings
from app.workers.commands import WORKERS, Ship
from app.workers.runner import handler_factory
from tests.support.stores import RivalWriter, memory_store

META = Metadata(correlation_id="test")
SETTINGS = Settings(default_stock=10, payment_decline_above=100)


class World:
    """The saga and the three workers on one store; ``settle()`` delivers every fact and command."""

    def __init__(
        self, store: EventStore, *, timeout_s: float = 30.0, retry: RetryPolicy | None = None
    ) -> None:
        self.store = store
        self.dispatch = InMemoryDispatch()
        self.reactor = SagaReactor(store, self.dispatch, step_timeout_s=timeout_s, retry=retry)
        self.workers = {name: handler_factory(name)(store, None, SETTINGS) for name in WORKERS}
        self.delivered = 0
        self.sent: list[str] = []

    async def create(self, order_id: int, amount: str = "50.00", items: dict[int, int] | None = None) -> None:
        lines = tuple(OrderItem(product_id=p, quantity=q) for p, q in (items or {}).items())
        cmd = CreateOrder(
            order_id=order_id, user_id=1, items=lines, amount=Decimal(amount), at=datetime.now(UTC)
        )
        await CommandHandler(self.store, ORDER).execute(order_id, cmd, META)

    async def settle(self) -> None:
        while True:
            events = await self.store.read_all(self.delivered + 1, limit=100_000)
            self.delivered = events[-1].sequence if events else self.delivered
            commands = self.dispatch.take()
            if not events and not commands:
                return
            for event in events:
                if event.envelope.type in FACT_TYPES:
                    await self.reactor.on_fact(event)
                if isinstance(event.event, OrderPaid):  # the shipping worker's own delivery
                    ship = Ship(
                        command_id=f"{event.envelope.aggregate_id}:ship_order:1",
                        order_id=event.event.order_id,
                        user_id=1,
                    )
                    self.sent.append("OrderPaid→Ship")
                    await self.workers["shipping"](ship, META)
            for worker, cmd in commands:
                self.sent.append(type(cmd).__name__)
                await self.workers[worker](cmd, META)

    async def saga(self, order_id: int) -> Saga:
        state = (await SagaViews(self.store).load(order_id)).saga
        assert isinstance(state, Saga)
        return state

    async def types(self, aggregate_type: str, aggregate_id: int) -> list[str]:
        return [
            e.envelope.type
            for e in (await self.store.load(StreamId(aggregate_type, str(aggregate_id)))).events
        ]


async def test_an_order_with_items_completes() -> None:
    world = World(memory_store())
    await world.create(1, items={1: 2})
    await world.settle()
    assert (await world.saga(1)).status is SagaStatus.COMPLETED
    assert await world.types("order", 1) == ["OrderCreated", "OrderPaid", "OrderShipped", "OrderCompleted"]
    assert await world.types("reservation", 1) == ["ReservationConfirmed", "ReservationCommitted"]
    assert world.sent == ["Reserve", "Charge", "OrderPaid→Ship", "Commit"]
    assert world.dispatch.timers == {}  # no timer: every step answered at once
    # the saga's own records: only the reservation's outcome and the commit's (the rest the order says)
    assert await world.types("saga", 1) == ["SagaAdvanced", "SagaAdvanced"]


async def test_a_declined_payment_is_compensated() -> None:
    world = World(memory_store())
    await world.create(2, amount="500.00", items={1: 2})
    await world.settle()
    assert (await world.saga(2)).status is SagaStatus.CANCELLED
    assert (await world.types("order", 2))[-1] == "OrderCancelled"
    assert (await world.types("reservation", 2))[-1] == "ReservationReleased"
    assert (await world.types("inventory", 1))[-1] == "StockReleased"
    assert "Refund" not in world.sent  # nothing was charged


async def test_a_redelivered_fact_changes_nothing_and_resends_the_running_step() -> None:
    store = memory_store()
    world = World(store)
    await world.create(3)
    [created] = (await store.load(StreamId("order", "3"))).events
    await world.reactor.on_fact(created)
    saga_events = await world.types("saga", 3)
    assert [type(c).__name__ for _, c in world.dispatch.queued] == ["Charge"]
    again = World(store)  # a fresh runner (its caches empty) gets the same fact after a crash
    await again.reactor.on_fact(created)
    assert await again.types("saga", 3) == saga_events
    assert [type(c).__name__ for _, c in again.dispatch.queued] == ["Charge"]  # the outbox, again
    assert saga_events == []  # the order's creation says the saga started: no record


async def test_a_fired_timer_times_the_step_out_and_compensates() -> None:
    world = World(memory_store(), timeout_s=0.0)  # every deadline has passed already
    await world.create(4)
    [created] = (await world.store.load(StreamId("order", "4"))).events
    await world.reactor.on_fact(created)
    world.dispatch.take()  # the charge is lost: never handled
    await world.reactor.on_timer(4, timeout_subject(4), "fired:1", META)
    await world.settle()
    saga = await world.saga(4)
    assert saga.status is SagaStatus.CANCELLED
    assert (await world.types("order", 4))[-1] == "OrderCancelled"


async def test_an_order_stream_that_is_always_contended_stops_the_reaction_loudly() -> None:
    store = memory_store()
    await World(store).create(5)

    def recreated(stream: StreamId) -> OrderCreated:  # a rival writer keeps the order "created"
        return OrderCreated(
            order_id=5,
            user_id=1,
            items=(),
            amount=Decimal("50.00"),
            currency="USD",
            at=datetime.now(UTC),
            owner="1",
        )

    rival = RivalWriter(store, recreated, "events.order.5")
    world = World(rival, retry=RetryPolicy(attempts=3, first_delay_s=0.0))
    with pytest.raises(RetriesExhausted):  # marking the order paid never gets through: not silent
        await world.settle()
    assert rival.rival_appends == 3
    # the payment is stored; the order is not paid: the runner naks the fact, redelivered later
    assert await world.types("payment", 5) == ["PaymentCharged"]
    assert (await world.saga(5)).payment_id is None
