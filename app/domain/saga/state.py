"""State of the fulfilment saga: a closed union of frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from app.domain.inventory.events import ReservedItem
from app.domain.saga.events import StepName, StepStatus


class SagaStatus(StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """The latest attempt of one step."""

    name: StepName
    status: StepStatus
    attempt: int
    command_id: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str | None = None
    compensation: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NoSaga:
    """Before the order was created."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Saga:
    order_id: int
    user_id: int
    items: tuple[ReservedItem, ...]
    amount: Decimal
    status: SagaStatus
    started_at: datetime
    updated_at: datetime
    steps: tuple[Step, ...] = ()
    payment_id: str | None = None
    tracking_number: str | None = None
    reason: str | None = None
    seen: frozenset[str] = frozenset()

    def step(self, name: StepName) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def running(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.status is StepStatus.RUNNING)

    @property
    def terminal(self) -> bool:
        return self.status in (SagaStatus.COMPLETED, SagaStatus.CANCELLED)


type SagaState = NoSaga | Saga

INITIAL: SagaState = NoSaga()
