"""Events of the fulfilment saga (stream ``events.saga.<order_id>``) and the facts it reacts to.

Each reaction to a fact is ONE stored event (``SagaStarted`` for the order's creation, which also
starts the first step; ``SagaAdvanced`` with the ordered changes otherwise) — single-message appends
are much cheaper than atomic batches. Every saga event carries the id of the fact (``trigger_id``)
that caused it, so the saga reacts to each fact at most once. A ``StepStarted`` change is also the
outbox record: it says which command to send.
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
    """Change: send ``command_id`` for ``step`` to its worker and arm the step's timer (outbox)."""

    step: StepName
    attempt: int
    command_id: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFinished:
    """Change: a step ended (succeeded, failed, timed out)."""

    step: StepName
    status: StepStatus
    outcome: str
    at: datetime
    payment_id: str | None = None
    tracking_number: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationStarted:
    """Change: the saga stops going forward and undoes what was started."""

    reason: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SagaCompleted:
    """Change: the order completed."""

    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SagaCancelled:
    """Change: every compensation is done; the order is cancelled."""

    reason: str
    at: datetime


type SagaChange = StepStarted | StepFinished | CompensationStarted | SagaCompleted | SagaCancelled


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One change as stored: a flat record (``kind`` says which) so a reaction is ONE stored event."""

    kind: str
    step: StepName | None = None
    attempt: int = 0
    command_id: str = ""
    status: StepStatus | None = None
    outcome: str = ""
    reason: str = ""
    payment_id: str | None = None
    tracking_number: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SagaAdvanced:
    """The saga's reaction to one fact: its changes, in order, as one event (one append, no batch).

    ``order_version``: how many of the order's events the decision saw — the record folds right after
    the order's event of that version, whatever the order's stream received meanwhile (``None`` in
    records of the earlier design, which fold in stream order)."""

    TYPE: ClassVar[str] = "SagaAdvanced"
    VERSION: ClassVar[int] = 1
    trigger_id: str
    at: datetime
    changes: tuple[Change, ...]
    order_version: int | None = None


def to_wire(change: SagaChange) -> Change:
    match change:
        case StepStarted():
            return Change(
                kind="step_started", step=change.step, attempt=change.attempt, command_id=change.command_id
            )
        case StepFinished():
            return Change(
                kind="step_finished",
                step=change.step,
                status=change.status,
                outcome=change.outcome,
                payment_id=change.payment_id,
                tracking_number=change.tracking_number,
            )
        case CompensationStarted():
            return Change(kind="compensation_started", reason=change.reason)
        case SagaCompleted():
            return Change(kind="completed")
        case SagaCancelled():
            return Change(kind="cancelled", reason=change.reason)
        case _:
            raise TypeError(f"unknown saga change {change!r}")


def from_wire(change: Change, at: datetime) -> SagaChange:
    match change.kind:
        case "step_started" if change.step is not None:
            return StepStarted(step=change.step, attempt=change.attempt, command_id=change.command_id, at=at)
        case "step_finished" if change.step is not None and change.status is not None:
            return StepFinished(
                step=change.step,
                status=change.status,
                outcome=change.outcome,
                at=at,
                payment_id=change.payment_id,
                tracking_number=change.tracking_number,
            )
        case "compensation_started":
            return CompensationStarted(reason=change.reason, at=at)
        case "completed":
            return SagaCompleted(at=at)
        case "cancelled":
            return SagaCancelled(reason=change.reason, at=at)
        case _:
            raise TypeError(f"unknown saga change {change!r}")


type SagaEvent = SagaStarted | SagaAdvanced

SAGA_EVENTS: tuple[type[SagaEvent], ...] = (SagaStarted, SagaAdvanced)
