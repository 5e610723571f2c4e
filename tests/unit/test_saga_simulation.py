"""Property test of the whole fulfilment protocol with pure parts only: the saga decider, the order
sync, and the inventory/payment/shipping deciders, driven by a random scheduler that reorders,
duplicates and delays every message, fires timers at any moment, and may inject a user's cancel.

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
from app.domain.payment import PAYMENT, Charged
from app.domain.saga import (
    SAGA,
    React,
    Saga,
    SagaStatus,
    StepName,
    StepStatus,
    StepTimedOut,
    order_commands,
    started_steps,
)
from app.domain.shipping import SHIPPING, Dispatched
from app.saga.fulfilment import worker_command
from app.workers.commands import Charge, Commit, Refund, Release, Reserve, WorkerCommand
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
    saga: Any = SAGA.initial
    order: Any = ORDER.initial
    payment: Any = PAYMENT.initial
    shipping: Any = SHIPPING.initial
    reservation: Reservation = field(default_factory=Reservation)
    stocks: dict[int, StockState] = field(default_factory=dict)
    queue: list[tuple[str, Any]] = field(default_factory=list)
    saga_log: list[Any] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    n: int = 0

    def fact(self, event: Any) -> None:
        self.n += 1
        self.queue.append(("fact", (f"e{self.n}", event)))

    def order_events(self, events: list[Any]) -> None:
        for e in events:
            self.order = ORDER.evolve(self.order, e)
            self.fact(e)

    def react(self, trigger_id: str, fact: Any) -> None:
        events = SAGA.decide(React(order_id=ORDER_ID, trigger_id=trigger_id, fact=fact, at=T), self.saga)
        self.saga_log.extend(events)
        self.saga = SAGA.fold(events, self.saga)
        for name in started_steps(events):
            step = self.saga.step(name)
            if step is not None and step.status is StepStatus.RUNNING:
                self.queue.append(("cmd", worker_command(self.saga, step)[1]))
                self.queue.append(("timer", StepTimedOut(order_id=ORDER_ID, step=name, attempt=step.attempt)))
        state = self.order
        out = []
        try:
            for cmd in order_commands(self.saga, state, T):
                new = ORDER.decide(cmd, state)
                out.extend(new)
                state = ORDER.fold(new, state)
        except DomainError:
            out = []
        self.order_events(out)

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
    assert SAGA.fold(world.saga_log) == saga  # replay reproduces the state
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
