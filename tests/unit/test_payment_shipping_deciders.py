"""Properties of the payment and shipping deciders: at most one charge / dispatch per order whatever
commands arrive in whatever order and how often; compensation first forbids the late effect; replay
rebuilds the state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.common import Decider, InvalidValue
from app.domain.payment import PAYMENT, ChargePayment, NoPayment, PaymentCharged, RefundPayment, Voided
from app.domain.shipping import SHIPPING, CancelShipment, DispatchShipment, ShipmentDispatched

T = datetime(2026, 1, 1, tzinfo=UTC)


def _run[S](decider: Decider[Any, Any, S], commands: Sequence[Any]) -> tuple[list[Any], S, list[list[Any]]]:
    """Decide and fold each command in turn: the events, the final state, and what deciding each
    command once more right after it would have appended."""
    state, log, repeats = decider.initial, [], []
    for cmd in commands:
        events = decider.decide(cmd, state)
        log.extend(events)
        state = decider.fold(events, state)
        repeats.append(decider.decide(cmd, state))
    return log, state, repeats


pay_st = st.one_of(
    st.builds(
        lambda c, a: ChargePayment(
            order_id=1, amount=Decimal(a), command_id=f"c{c}", at=T, decline_above=Decimal(100)
        ),
        st.integers(0, 2),
        st.sampled_from(["5.00", "150.00"]),
    ),
    st.builds(lambda c: RefundPayment(order_id=1, command_id=f"r{c}", at=T), st.integers(0, 2)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(pay_st, max_size=12))
def test_payment_charges_and_refunds_at_most_once(commands: list[ChargePayment | RefundPayment]) -> None:
    log, state, repeats = _run(PAYMENT, commands)
    # a repeat does nothing (a declined charge may be tried again)
    assert all(
        not again or isinstance(cmd, ChargePayment) for cmd, again in zip(commands, repeats, strict=True)
    )
    names = [type(e).__name__ for e in log]
    assert names.count("PaymentCharged") <= 1
    assert names.count("PaymentRefunded") <= names.count("PaymentCharged")
    assert len(log) <= 2
    assert PAYMENT.fold(log) == state


def test_void_first_forbids_the_late_charge() -> None:
    state = PAYMENT.fold(PAYMENT.decide(RefundPayment(order_id=1, command_id="r", at=T), NoPayment()))
    assert isinstance(state, Voided)
    charge = ChargePayment(order_id=1, amount=Decimal("5"), command_id="c", at=T)
    assert PAYMENT.decide(charge, state) == []


def test_charge_is_deterministic_and_declines_above_limit() -> None:
    charge = ChargePayment(order_id=1, amount=Decimal("5"), command_id="c", at=T, decline_above=Decimal(10))
    [a] = PAYMENT.decide(charge, NoPayment())
    [b] = PAYMENT.decide(charge, NoPayment())
    assert isinstance(a, PaymentCharged)
    assert a == b
    big = ChargePayment(order_id=1, amount=Decimal("11"), command_id="c", at=T, decline_above=Decimal(10))
    assert type(PAYMENT.decide(big, NoPayment())[0]).__name__ == "PaymentDeclined"
    with pytest.raises(InvalidValue):
        PAYMENT.decide(ChargePayment(order_id=1, amount=Decimal("-1"), command_id="c", at=T), NoPayment())


ship_st = st.one_of(
    st.builds(
        lambda c, f: DispatchShipment(order_id=1, command_id=f"s{c}", at=T, fail_reason="x" if f else None),
        st.integers(0, 2),
        st.booleans(),
    ),
    st.builds(lambda c: CancelShipment(order_id=1, command_id=f"x{c}", at=T), st.integers(0, 2)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ship_st, max_size=12))
def test_shipping_dispatches_at_most_once(commands: list[DispatchShipment | CancelShipment]) -> None:
    log, state, repeats = _run(SHIPPING, commands)
    assert not any(repeats)  # a repeat does nothing
    assert sum(isinstance(e, ShipmentDispatched) for e in log) <= 1
    assert SHIPPING.fold(log) == state


def test_tracking_number_is_deterministic() -> None:
    cmd = DispatchShipment(order_id=7, command_id="7:ship_order:1", at=T)
    [a] = SHIPPING.decide(cmd, SHIPPING.initial)
    [b] = SHIPPING.decide(cmd, SHIPPING.initial)
    assert isinstance(a, ShipmentDispatched)
    assert a.tracking_number == b.tracking_number
