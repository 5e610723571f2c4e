"""The Order decider: lifecycle, validation, idempotency, and the replay property (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.common import AlreadyExists, DomainError, InvalidTransition, InvalidValue, NotFound
from app.domain.order import (
    INITIAL,
    ORDER,
    CancelOrder,
    CompleteOrder,
    CreateOrder,
    MarkOrderPaid,
    Order,
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderPaid,
    OrderStatus,
    ShipOrder,
    decide,
    evolve,
)

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def create(**kw: object) -> CreateOrder:
    args: dict[str, object] = {
        "order_id": 1,
        "user_id": 123,
        "items": (OrderItem(product_id=1, quantity=2),),
        "amount": Decimal("199.98"),
        "at": T0,
    }
    args.update(kw)
    return CreateOrder(**args)  # type: ignore[arg-type]


def run(*commands: object) -> Order:
    state = INITIAL
    for cmd in commands:
        for event in decide(cmd, state):  # type: ignore[arg-type]
            state = evolve(state, event)
    assert isinstance(state, Order)
    return state


def test_seed_lifecycle_reaches_completed() -> None:
    order = run(
        create(),
        MarkOrderPaid(order_id=1, payment_id="pay-1", at=T0 + timedelta(minutes=5)),
        ShipOrder(order_id=1, tracking_number="TRK-1", at=T0 + timedelta(minutes=30)),
        CompleteOrder(order_id=1, at=T0 + timedelta(hours=1)),
    )
    assert order.status is OrderStatus.COMPLETED
    assert order.created_at == T0
    assert order.updated_at == T0 + timedelta(hours=1)


def test_order_paid_names_the_customer_so_shipping_needs_no_other_read() -> None:
    [paid] = decide(MarkOrderPaid(order_id=1, payment_id="p", at=T0), run(create(user_id=77)))
    assert isinstance(paid, OrderPaid)
    assert (paid.user_id, paid.payment_id) == (77, "p")


def test_seed_curl_order_without_items_is_valid() -> None:
    [event] = decide(create(items=(), amount=Decimal("99.99")), INITIAL)
    assert isinstance(event, OrderCreated)
    assert event.items == ()
    assert event.amount == Decimal("99.99")
    assert event.currency == "USD"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"items": (OrderItem(product_id=1, quantity=0),)}, "quantity"),
        ({"items": (OrderItem(product_id=0, quantity=1),)}, "product_id"),
        ({"items": (OrderItem(product_id=-3, quantity=1),)}, "product_id"),
        ({"amount": Decimal("-1")}, ">= 0"),
        ({"amount": Decimal("1.999")}, "two decimals"),
        ({"user_id": 0}, "user_id"),
        ({"currency": "usd"}, "currency"),
        (
            {"items": (OrderItem(product_id=1, quantity=1), OrderItem(product_id=1, quantity=2))},
            "once",
        ),
    ],
)
def test_invalid_values_are_rejected(kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        decide(create(**kw), INITIAL)


def test_amount_with_trailing_zeros_is_fine() -> None:
    [event] = decide(create(amount=Decimal("5.500")), INITIAL)
    assert isinstance(event, OrderCreated)
    assert event.amount == Decimal("5.50")


def test_repeated_commands_are_idempotent() -> None:
    order = run(create())
    assert decide(create(), order) == []
    cancelled = run(create(), CancelOrder(order_id=1, reason="changed my mind", at=T0))
    assert decide(CancelOrder(order_id=1, reason="again", at=T0), cancelled) == []
    paid = run(create(), MarkOrderPaid(order_id=1, payment_id="p", at=T0))
    assert decide(MarkOrderPaid(order_id=1, payment_id="p", at=T0), paid) == []


def test_invalid_transitions_raise() -> None:
    with pytest.raises(NotFound):
        decide(CancelOrder(order_id=1, reason="x", at=T0), INITIAL)
    with pytest.raises(AlreadyExists):
        decide(create(amount=Decimal("1.00")), run(create()))
    with pytest.raises(InvalidTransition):
        decide(ShipOrder(order_id=1, tracking_number="t", at=T0), run(create()))
    shipped = run(
        create(),
        MarkOrderPaid(order_id=1, payment_id="p", at=T0),
        ShipOrder(order_id=1, tracking_number="t", at=T0),
    )
    with pytest.raises(InvalidTransition):
        decide(CancelOrder(order_id=1, reason="too late", at=T0), shipped)
    cancelled = run(create(), CancelOrder(order_id=1, reason="x", at=T0))
    with pytest.raises(InvalidTransition):
        decide(MarkOrderPaid(order_id=1, payment_id="p", at=T0), cancelled)


# -- properties -------------------------------------------------------------------------------

times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
items = st.lists(
    st.builds(OrderItem, product_id=st.integers(-2, 50), quantity=st.integers(-1, 5)), max_size=4
).map(tuple)
amounts = st.decimals(min_value=Decimal("-5"), max_value=Decimal("100000"), places=3)
commands = st.one_of(
    st.builds(
        CreateOrder,
        order_id=st.just(1),
        user_id=st.integers(0, 3),
        items=items,
        amount=amounts,
        at=times,
        currency=st.sampled_from(["USD", "EUR", "eur"]),
    ),
    st.builds(MarkOrderPaid, order_id=st.just(1), payment_id=st.sampled_from(["p1", "p2", ""]), at=times),
    st.builds(ShipOrder, order_id=st.just(1), tracking_number=st.sampled_from(["t1", "t2"]), at=times),
    st.builds(CompleteOrder, order_id=st.just(1), at=times),
    st.builds(CancelOrder, order_id=st.just(1), reason=st.sampled_from(["r", ""]), at=times),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=12))
def test_replaying_emitted_events_reproduces_state(cmds: list[object]) -> None:
    state = INITIAL
    emitted = []
    for cmd in cmds:
        try:
            events = decide(cmd, state)  # type: ignore[arg-type]
        except DomainError:
            continue  # invalid commands never emit events (they raise instead of returning any)
        for event in events:
            state = evolve(state, event)
        emitted.extend(events)
    assert ORDER.fold(emitted) == state
    # Terminal states accept no further change.
    if isinstance(state, Order) and state.status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED):
        assert all(not isinstance(e, OrderCreated) for e in emitted[1:])


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=12))
def test_invalid_commands_never_emit_events_and_keep_state(cmds: list[object]) -> None:
    state = INITIAL
    for cmd in cmds:
        before = state
        try:
            events = decide(cmd, state)  # type: ignore[arg-type]
        except DomainError:
            assert state == before
            continue
        for event in events:
            state = evolve(state, event)
        if isinstance(before, Order) and before.status is OrderStatus.CANCELLED:
            assert events == [] or isinstance(events[0], OrderCancelled)


@settings(max_examples=200, deadline=None)
@given(commands)
def test_amount_validation_matches_rule(cmd: object) -> None:
    if not isinstance(cmd, CreateOrder):
        return
    valid = cmd.amount >= 0 and cmd.amount == cmd.amount.quantize(Decimal("0.01"))
    try:
        decide(cmd, INITIAL)
    except InvalidValue as exc:
        if valid:
            assert "amount" not in str(exc)
    else:
        assert valid
