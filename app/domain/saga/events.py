"""Events of the fulfilment saga (stream ``events.saga.<order_id>``) and the facts it reacts to.

Every saga event carries the id of the fact (``trigger_id``) that caused it, so the saga reacts to
each fact at most once. ``StepStarted`` is also the outbox record: it says which command to send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from app.domain.inventory.events import ReservationEvent, ReservedItem
from app.domain.order.events import OrderEvent
from app.domain.payment.decider import PaymentEvent
from app.domain.shipping.decider import ShipmentEvent


class StepName(StrEnum):
    """Forward steps, then compensations (which undo whatever a started forward step may have done)."""

    RESERVE = "reserve_inventory"
    CHARGE = "charge_payment"
    SHIP = "ship_order"
    COMMIT = "commit_inventory"
    RELEASE = "release_inventory"
    REFUND = "refund_payment"
    RECALL = "cancel_shipment"


COMPENSATION_OF: dict[StepName, StepName] = {
    StepName.RESERVE: StepName.RELEASE,
    StepName.CHARGE: StepName.REFUND,
    StepName.SHIP: StepName.RECALL,
}
COMPENSATIONS = frozenset(COMPENSATION_OF.values())


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepTimedOut:
    """A step's durable timer fired (it may have finished meanwhile: then it is ignored)."""

    order_id: int
    step: StepName
    attempt: int


type Fact = OrderEvent | ReservationEvent | PaymentEvent | ShipmentEvent | StepTimedOut


@dataclass(frozen=True, slots=True, kw_only=True)
class React:
    """The saga's only command: react to ``fact`` (an observed event or a timeout) at ``at``."""

    order_id: int
    trigger_id: str
    fact: Fact
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SagaStarted:
    TYPE: ClassVar[str] = "SagaStarted"
    VERSION: ClassVar[int] = 1
    order_id: int
    user_id: int
    items: tuple[ReservedItem, ...]
    amount: Decimal
    trigger_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStarted:
    """Outbox record: send ``command_id`` for ``step`` to its worker and arm the step's timer."""

    TYPE: ClassVar[str] = "SagaStepStarted"
    VERSION: ClassVar[int] = 1
    step: StepName
    attempt: int
    command_id: str
    trigger_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFinished:
    TYPE: ClassVar[str] = "SagaStepFinished"
    VERSION: ClassVar[int] = 1
    step: StepName
    status: StepStatus
    outcome: str
    trigger_id: str
    at: datetime
    payment_id: str | None = None
    tracking_number: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationStarted:
    TYPE: ClassVar[str] = "SagaCompensationStarted"
    VERSION: ClassVar[int] = 1
    reason: str
    trigger_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SagaCompleted:
    TYPE: ClassVar[str] = "SagaCompleted"
    VERSION: ClassVar[int] = 1
    trigger_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SagaCancelled:
    TYPE: ClassVar[str] = "SagaCancelled"
    VERSION: ClassVar[int] = 1
    reason: str
    trigger_id: str
    at: datetime


type SagaEvent = (
    SagaStarted | StepStarted | StepFinished | CompensationStarted | SagaCompleted | SagaCancelled
)

SAGA_EVENTS: tuple[type[SagaEvent], ...] = (
    SagaStarted,
    StepStarted,
    StepFinished,
    CompensationStarted,
    SagaCompleted,
    SagaCancelled,
)
