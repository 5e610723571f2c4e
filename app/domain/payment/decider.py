"""The Payment decider (one aggregate per order): commands, events, states and the pure rules.

- ``ChargePayment`` charges once: amounts above ``decline_above`` are declined; a charge after the
  payment was refunded or voided does nothing (a late, redelivered charge never takes money).
- ``RefundPayment`` compensates: a captured charge is refunded; if nothing was captured yet the
  payment is voided, so a charge still in flight can no longer succeed. Repeats do nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from app.domain.common import Decider, money, positive_int

_NAMESPACE = uuid.UUID("6f1c7d3e-2b7a-4f0e-9c55-1d2a3b4c5d6e")


def payment_id_for(order_id: int, command_id: str) -> str:
    """Deterministic, so a retried charge reports the same payment id."""
    return f"pay-{uuid.uuid5(_NAMESPACE, f'{order_id}:{command_id}').hex[:16]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargePayment:
    order_id: int
    amount: Decimal
    command_id: str
    at: datetime
    decline_above: Decimal = Decimal("10000")


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundPayment:
    order_id: int
    command_id: str
    at: datetime
    reason: str = "compensation"


type PaymentCommand = ChargePayment | RefundPayment


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentCharged:
    TYPE: ClassVar[str] = "PaymentCharged"
    VERSION: ClassVar[int] = 1
    order_id: int
    payment_id: str
    amount: Decimal
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentDeclined:
    TYPE: ClassVar[str] = "PaymentDeclined"
    VERSION: ClassVar[int] = 1
    order_id: int
    amount: Decimal
    reason: str
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRefunded:
    TYPE: ClassVar[str] = "PaymentRefunded"
    VERSION: ClassVar[int] = 1
    order_id: int
    payment_id: str
    amount: Decimal
    reason: str
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentVoided:
    """Compensation before any capture: nothing to give back, and no later charge may succeed."""

    TYPE: ClassVar[str] = "PaymentVoided"
    VERSION: ClassVar[int] = 1
    order_id: int
    reason: str
    command_id: str
    at: datetime


type PaymentEvent = PaymentCharged | PaymentDeclined | PaymentRefunded | PaymentVoided


@dataclass(frozen=True, slots=True, kw_only=True)
class NoPayment:
    """Nothing happened yet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Charged:
    payment_id: str
    amount: Decimal
    command_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Declined:
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Refunded:
    payment_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class Voided:
    reason: str


type PaymentState = NoPayment | Charged | Declined | Refunded | Voided


def decide(command: PaymentCommand, state: PaymentState) -> list[PaymentEvent]:
    positive_int(command.order_id, field="order_id")
    match command:
        case ChargePayment():
            amount = money(command.amount)
            if not isinstance(state, NoPayment):
                return []  # charged, declined, refunded or voided before: a charge happens once
            if amount > command.decline_above:
                return [
                    PaymentDeclined(
                        order_id=command.order_id,
                        amount=amount,
                        reason=f"amount above the limit of {command.decline_above}",
                        command_id=command.command_id,
                        at=command.at,
                    )
                ]
            return [
                PaymentCharged(
                    order_id=command.order_id,
                    payment_id=payment_id_for(command.order_id, command.command_id),
                    amount=amount,
                    command_id=command.command_id,
                    at=command.at,
                )
            ]
        case RefundPayment():
            match state:
                case Charged():
                    return [
                        PaymentRefunded(
                            order_id=command.order_id,
                            payment_id=state.payment_id,
                            amount=state.amount,
                            reason=command.reason,
                            command_id=command.command_id,
                            at=command.at,
                        )
                    ]
                case NoPayment() | Declined():
                    return [
                        PaymentVoided(
                            order_id=command.order_id,
                            reason=command.reason,
                            command_id=command.command_id,
                            at=command.at,
                        )
                    ]
                case Refunded() | Voided():
                    return []
                case _:
                    raise TypeError(f"unknown payment state {state!r}")
        case _:
            raise TypeError(f"unknown payment command {command!r}")


def evolve(state: PaymentState, event: PaymentEvent) -> PaymentState:
    match event:
        case PaymentCharged():
            return Charged(payment_id=event.payment_id, amount=event.amount, command_id=event.command_id)
        case PaymentDeclined():
            return Declined(reason=event.reason)
        case PaymentRefunded():
            return Refunded(payment_id=event.payment_id, amount=event.amount)
        case PaymentVoided():
            return Voided(reason=event.reason)
        case _:
            raise TypeError(f"unknown payment event {event!r}")


PAYMENT: Decider[PaymentCommand, PaymentEvent, PaymentState] = Decider(
    aggregate_type="payment",
    decide=decide,
    evolve=evolve,
    initial=NoPayment(),
    event_types=(PaymentCharged, PaymentDeclined, PaymentRefunded, PaymentVoided),
    state_types=(NoPayment, Charged, Declined, Refunded, Voided),
)
