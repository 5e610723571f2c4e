"""``GET /api/v1/admin/dead-letters``: read-only view of the dead-letter stream ``DLQ`` (newest first)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import Ctx
from app.api.security import AUTH_RESPONSES, requires
from app.auth.scopes import Scope
from app.readmodel import deadletter

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[requires(Scope.ADMIN_READ)],
    responses=AUTH_RESPONSES,
)


class DeadLetterOut(BaseModel):
    dlq_sequence: int
    subject: str
    time: str | None
    consumer: str | None
    stream: str | None
    sequence: int
    original_subject: str | None
    attempts: int
    error: str | None
    event_id: str | None
    preview: str


class DeadLettersOut(BaseModel):
    stream: str
    count: int
    items: list[DeadLetterOut]


@router.get(
    "/dead-letters",
    response_model=DeadLettersOut,
    summary="Messages parked in the dead-letter stream (events a consumer could not process), newest first",
)
async def dead_letters(
    ctx: Ctx, limit: Annotated[int, Query(ge=1, le=500, description="At most this many.")] = 50
) -> DeadLettersOut:
    items = await deadletter.recent(ctx.nc.jetstream(timeout=3.0), limit)
    return DeadLettersOut(
        stream=deadletter.DLQ_STREAM, count=len(items), items=[DeadLetterOut(**i) for i in items]
    )
