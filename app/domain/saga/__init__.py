"""The order fulfilment saga as an event-sourced aggregate (``events.saga.<order_id>``)."""

from app.domain.saga.decider import FORWARD, SAGA, command_id
from app.domain.saga.events import (
    COMPENSATION_OF,
    COMPENSATIONS,
    SAGA_EVENTS,
    CompensationStarted,
    Fact,
    React,
    SagaCancelled,
    SagaCompleted,
    SagaEvent,
    SagaStarted,
    StepFinished,
    StepName,
    StepStarted,
    StepStatus,
    StepTimedOut,
)
from app.domain.saga.order_sync import order_commands
from app.domain.saga.state import INITIAL, NoSaga, Saga, SagaState, SagaStatus, Step

__all__ = [
    "COMPENSATIONS",
    "COMPENSATION_OF",
    "FORWARD",
    "INITIAL",
    "SAGA",
    "SAGA_EVENTS",
    "CompensationStarted",
    "Fact",
    "NoSaga",
    "React",
    "Saga",
    "SagaCancelled",
    "SagaCompleted",
    "SagaEvent",
    "SagaStarted",
    "SagaState",
    "SagaStatus",
    "Step",
    "StepFinished",
    "StepName",
    "StepStarted",
    "StepStatus",
    "StepTimedOut",
    "command_id",
    "order_commands",
]
