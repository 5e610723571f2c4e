"""Property test of the whole fulfilment protocol with pure parts only: the saga's reaction on its view
(decider, order sync, the records it keeps), and the inventory/payment/shipping deciders — shipping
started by ``OrderPaid`` itself —, driven by a random scheduler that reorders, duplicates and delays
every message, fires timers at any moment, and may inject a user's cancel.

Whatever happens, once every message has been delivered the saga is terminal and its effects are
consistent: completed ⇒ charged, shipped, stock committed; cancelled ⇒ no money kept, stock back,
nothing shipped. Duplicates never apply twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.common import DomainError
from app.domain.inventory import (
    NoStock,
    Reservation,
    ReservationStatus,
    Stock,
    StockState,
    plan,
)
from app.domain.inventory.decider import evolve_reservation, evolve_stock
from app.domain.order import ORDER, CancelOrder, CreateOrder, OrderItem, OrderStatus
from app.domain.order.events import OrderPaid
from app.domain.payment import PAYMENT, Charged
from app.domain.saga import (
    INITIAL,
    React,
    Saga,
    SagaStatus,
    StepName,
    StepTimedOut,
    command_id,
)
from app.domain.saga.view import commands_due, evolve_view, fold_view, reaction
from app.domain.shipping import SHIPPING, Dispatched
from app.saga.fulfilment import worker_command
from app.workers.commands import Charge, Commit, Refund, Release, Reserve, Ship, WorkerCommand
from app.workers.inventory import inventory_command
from app.workers.payment import payment_command
from app.workers.shipping import shipping_command

T = datetime(2026, 1, 1, tzinfo=UTC)
ORDER_ID = 1


@dataclass
class World:
    default_stock: int
    decline_above: Decimal
    ship_fails: bool
    saga: Any = INITIAL  # no saga before the order exists
    order: Any = ORDER.initial
    payment: Any = PAYMENT.initial
    shipping: Any = SHIPPING.initial
    reservation: Reservation = field(default_factory=Reservation)
    stocks: dict[int, StockState] = field(default_factory=dict)
    queue: list[tuple[str, Any]] = field(default_factory=list)
    log: list[Any] = field(default_factory=list)  # both streams, in their global order
    sent: set[str] = field(default_factory=set)
    effects: list[str] = field(default_factory=list)
    n: int = 0

    def fact(self, event: Any) -> None:
        self.n += 1
        self.queue.append(("fact", (f"e{self.n}", event)))

    def store(self, event: Any) -> None:
        self.log.append(event)
        self.saga = evolve_view(self.saga, event)

    def order_events(self, events: list[Any]) -> None:
        for e in events:
            self.order = ORDER.evolve(self.order, e)
            self.store(e)
            self.fact(e)
            if isinstance(e, OrderPaid):  # the shipping worker's own delivery of the event
                ship = Ship(command_id=command_id(ORDER_ID, StepName.SHIP, 1), order_id=ORDER_ID, user_id=9)
                self.queue.append(("cmd", ship))
        self.send()

    def send(self) -> None:
        """As the reactor: every running step's command once (and its timer)."""
        if not isinstance(self.saga, Saga):
            return
        for step in self.saga.running():
            if step.command_id in self.sent:
                continue
            self.sent.add(step.command_id)
            if step.name in commands_due(self.saga):
                self.queue.append(("cmd", worker_command(self.saga, step)[1]))
            self.queue.append(
                ("timer", StepTimedOut(order_id=ORDER_ID, step=step.name, attempt=step.attempt))
            )

    def react(self, trigger_id: str, fact: Any) -> None:
        done = reaction(
            React(order_id=ORDER_ID, trigger_id=trigger_id, fact=fact, at=T), self.saga, self.order
        )
        for e in done.saga_events:
            self.store(e)
        self.order_events(done.order_events)
        self.send()

    def work(self, cmd: WorkerCommand) -> None:
        """As the workers: their own translation of the command, the real deciders."""
        if isinstance(cmd, Reserve | Release | Commit):
            command = inventory_command(cmd, T, self.default_stock)
            while True:  # as the worker: after an outcome stored first, plan the give-back
                p = plan(command, self.reservation, self.stocks)
                for pid, events in p.stock.items():
                    for e in events:
                        self.stocks[pid] = evolve_stock(self.stocks.get(pid, NoStock()), e)
                        self.effects.append(f"{type(e).__name__}:{pid}")
                for e in p.reservation:
                    self.reservation = evolve_reservation(self.reservation, e)
                    self.fact(e)
                if not p.outcome_first:
                    break
        elif isinstance(cmd, Charge | Refund):
            for e in PAYMENT.decide(payment_command(cmd, T, self.decline_above), self.payment):
                self.payment = PAYMENT.evolve(self.payment, e)
                self.effects.append(type(e).__name__)
                self.fact(e)
        else:
            failing = {9} if self.ship_fails else set()
            for e in SHIPPING.decide(shipping_command(cmd, T, failing), self.shipping):
                self.shipping = SHIPPING.evolve(self.shipping, e)
                self.effects.append(type(e).__name__)
                self.fact(e)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.dictionaries(st.integers(1, 3), st.integers(1, 4), max_size=3),
    default_stock=st.sampled_from([0, 3, 100]),
    amount=st.sampled_from(["10.00", "500.00"]),
    ship_fails=st.booleans(),
    cancel_at=st.one_of(st.none(), st.integers(0, 30)),
    data=st.data(),
)
def test_any_schedule_ends_terminal_and_consistent(
    items: dict[int, int],
    default_stock: int,
    amount: str,
    ship_fails: bool,
    cancel_at: int | None,
    data: st.DataObject,
) -> None:
    world = World(default_stock=default_stock, decline_above=Decimal("100"), ship_fails=ship_fails)
    create = CreateOrder(
        order_id=ORDER_ID,
        user_id=9,
        items=tuple(OrderItem(product_id=p, quantity=q) for p, q in items.items()),
        amount=Decimal(amount),
        at=T,
    )
    world.order_events(list(ORDER.decide(create, world.order)))
    steps = 0
    while world.queue:
        steps += 1
        draining = steps > 60
        choices = [i for i, (k, _) in enumerate(world.queue) if not (draining and k == "timer")] or list(
            range(len(world.queue))
        )
        index = data.draw(st.sampled_from(choices)) if not draining else choices[0]
        kind, payload = world.queue[index]
        if draining or not data.draw(st.booleans()):
            world.queue.pop(index)  # otherwise: delivered now AND again later (a redelivery)
        if steps == cancel_at:
            try:
                cancel = CancelOrder(order_id=ORDER_ID, reason="user", at=T)
                world.order_events(list(ORDER.decide(cancel, world.order)))
            except DomainError:
                pass
        if kind == "fact":
            world.react(*payload)
        elif kind == "cmd":
            world.work(payload)
        elif not isinstance(world.saga, Saga) or not world.saga.terminal or draining:
            world.react(f"timeout:{payload.step}:{payload.attempt}", payload)
        assert steps < 2000, "no progress"

    saga = world.saga
    assert isinstance(saga, Saga)
    assert saga.terminal, saga
    assert fold_view(world.log) == saga  # replay reproduces the state
    assert world.effects.count("PaymentCharged") <= 1
    assert world.effects.count("PaymentRefunded") <= 1
    assert world.effects.count("ShipmentDispatched") <= 1
    for state in world.stocks.values():
        assert isinstance(state, Stock)
        assert 0 <= state.available <= state.stock
        assert not state.holds
    if saga.status is SagaStatus.COMPLETED:
        assert world.order.status is OrderStatus.COMPLETED
        assert isinstance(world.payment, Charged)
        assert isinstance(world.shipping, Dispatched)
        if items:
            assert world.reservation.status is ReservationStatus.COMMITTED
            for pid, qty in items.items():
                state = world.stocks[pid]
                assert isinstance(state, Stock)
                assert state.stock == default_stock - qty
    else:
        assert world.order.status is OrderStatus.CANCELLED
        assert not isinstance(world.payment, Charged)
        assert not isinstance(world.shipping, Dispatched)
        assert world.reservation.status is not ReservationStatus.RESERVED
        for state in world.stocks.values():
            assert isinstance(state, Stock)
            assert state.stock == default_stock
    compensated = {s.name for s in saga.steps if s.compensation}
    if saga.status is SagaStatus.CANCELLED:
        for forward, undo in ((StepName.RESERVE, StepName.RELEASE), (StepName.CHARGE, StepName.REFUND)):
            step = saga.step(forward)
            if step is not None and step.outcome not in (None,) and step.status.value != "failed":
                assert undo in compensated
