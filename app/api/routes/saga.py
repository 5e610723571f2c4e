"""``GET /api/v1/orders/{id}/saga``: the fulfilment saga's state and step history (from the event store)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.api import reads
from app.api.deps import Ctx, tag_order_span
from app.api.errors import Problem
from app.api.schemas import OrderIdPath, problem_responses, rfc3339
from app.api.security import AUTH_RESPONSES, Caller, caller, requires
from app.auth.scopes import Scope
from app.domain.saga import Saga
from app.service.sagaview import SagaViews

router = APIRouter(
    prefix="/api/v1/orders",
    tags=["saga"],
    dependencies=[Depends(tag_order_span), Depends(caller)],
    responses=AUTH_RESPONSES,
)


class SagaStepOut(BaseModel):
    name: str
    status: str
    started_at: str
    finished_at: str | None
    outcome: str | None
    attempts: int
    compensation: bool


class SagaOut(BaseModel):
    order_id: int
    state: str
    reason: str | None
    steps: list[SagaStepOut]
    started_at: str
    updated_at: str
    version: int


def _time(at: datetime | None) -> str | None:
    return rfc3339(at) if at is not None else None


@router.get(
    "/{order_id}/saga",
    response_model=SagaOut,
    responses=problem_responses(404),
    summary="The order's fulfilment saga: state and each step with timestamps and outcome",
    dependencies=[requires(Scope.ORDERS_READ, Scope.ORDERS_READ_ALL)],
)
async def get_saga(
    order_id: OrderIdPath,
    ctx: Ctx,
    principal: Caller,
) -> SagaOut:
    await reads.ensure_may_read(ctx, principal, order_id)
    view = await SagaViews(ctx.store).load(order_id)
    saga = view.saga
    if not isinstance(saga, Saga):
        raise Problem(404, "saga-not-found", "Saga not found", f"order {order_id} has no saga (yet)")
    steps = sorted(saga.steps, key=lambda s: (s.started_at, s.compensation))
    return SagaOut(
        order_id=order_id,
        state=saga.status.value,
        reason=saga.reason,
        steps=[
            SagaStepOut(
                name=s.name.value,
                status=s.status.value,
                started_at=rfc3339(s.started_at),
                finished_at=_time(s.finished_at),
                outcome=s.outcome,
                attempts=s.attempt,
                compensation=s.compensation,
            )
            for s in steps
        ],
        started_at=rfc3339(saga.started_at),
        updated_at=rfc3339(saga.updated_at),
        version=view.saga_at.version + view.order_at.version,
    )
