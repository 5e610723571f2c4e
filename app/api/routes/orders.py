"""``/api/v1/orders``: create, get (read-your-writes, as-of), list (keyset), history, cancel.

Thin: parse, call one function of ``app.api.commands`` / ``app.api.reads`` / the queries, render.
Every route needs a bearer token (the router's ``caller`` dependency) and the scopes ``requires`` names;
who sees which order is ``app.api.access``'s.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import AwareDatetime
from starlette.responses import Response

from app.api import access, commands, reads
from app.api.deps import Ctx, Meta, tag_order_span
from app.api.paging import Cursor, Limit, decode_cursor, encode_cursor, next_link
from app.api.schemas import (
    MAX_ID,
    CancelOrderIn,
    CommandOut,
    CreateOrderIn,
    OrderHistoryOut,
    OrderIdPath,
    OrderOut,
    OrderPageOut,
    problem_responses,
    render_order,
    rfc3339,
)
from app.api.security import AUTH_RESPONSES, Caller, caller, requires
from app.auth.scopes import Scope
from app.domain.order import ORDER, Order, OrderStatus
from app.readmodel.queries import list_orders

PREFIX = "/api/v1/orders"
router = APIRouter(
    prefix=PREFIX,
    tags=["orders"],
    dependencies=[Depends(tag_order_span), Depends(caller)],
    responses=AUTH_RESPONSES,
)
WRITE = requires(Scope.ORDERS_WRITE, Scope.ORDERS_WRITE_ANY)
READ = requires(Scope.ORDERS_READ, Scope.ORDERS_READ_ALL)
CANCEL = requires(Scope.ORDERS_WRITE, Scope.ORDERS_CANCEL_ANY)

_ERRORS = problem_responses(404, 422)


_ORDER_ID = {"order_id": "$response.body#/order_id"}
# OpenAPI links from a created order to what can be done with it (clients, and schemathesis' stateful
# run in tests/e2e/test_schemathesis.py, follow them).
_CREATED_LINKS: dict[str, object] = {
    "GetOrder": {
        "operationId": "get_order_api_v1_orders__order_id__get",
        "parameters": _ORDER_ID | {"min_version": "$response.body#/version"},
        "description": "The created order (read-your-writes: waits until the read model has it).",
    },
    "GetOrderEvents": {
        "operationId": "order_events_api_v1_orders__order_id__events_get",
        "parameters": _ORDER_ID,
    },
    "GetOrderSaga": {"operationId": "get_saga_api_v1_orders__order_id__saga_get", "parameters": _ORDER_ID},
    "CancelOrder": {
        "operationId": "cancel_order_api_v1_orders__order_id__cancel_post",
        "parameters": _ORDER_ID | {"header.If-Match": "$response.header.ETag"},
    },
}


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


@router.post(
    "",
    status_code=201,
    response_model=CommandOut,
    responses={
        201: {"links": _CREATED_LINKS},
        **_ERRORS,
        409: _ERRORS[404],
        413: _ERRORS[404],
        415: _ERRORS[404],
        503: {**_ERRORS[404], "description": "saga-backlog: the saga is behind (Retry-After); or overloaded"},
    },
    summary="Create an order (scope orders:write; for another customer orders:write:any)",
    dependencies=[WRITE],
)
async def create_order(  # noqa: PLR0917 - FastAPI passes parameters by keyword
    body: CreateOrderIn,
    request: Request,
    ctx: Ctx,
    principal: Caller,
    meta: Meta,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Same key + same body → the same response and one order (24 h).",
        ),
    ] = None,
) -> Response:
    stored = await commands.create_order(
        ctx, principal, body=body, meta=meta, key=idempotency_key, path=request.url.path
    )
    return Response(
        stored.body, status_code=stored.status, media_type="application/json", headers=stored.headers
    )


@router.get(
    "/{order_id}",
    response_model=OrderOut,
    responses=_ERRORS,
    summary="Get an order (read model; ?min_version= waits for it, ?as_of= from the event store)",
    dependencies=[READ],
)
async def get_order(
    order_id: OrderIdPath,
    ctx: Ctx,
    principal: Caller,
    min_version: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="Wait (bounded) until the order reached this version."),
    ] = None,
    as_of: Annotated[
        AwareDatetime | None, Query(description="RFC 3339 time with offset: the order as it was then.")
    ] = None,
) -> Response:
    record, source = await reads.read_order(ctx, principal, order_id, min_version=min_version, as_of=as_of)
    headers = {"ETag": f'"{record.version}"', "Eda-Consistency": source}
    return _json(render_order(record), headers=headers)


@router.get(
    "",
    response_model=OrderPageOut,
    responses=_ERRORS,
    summary="List orders (keyset pagination; the caller's own unless orders:read:all)",
    dependencies=[READ],
)
async def list_orders_route(  # noqa: PLR0917 - FastAPI passes query parameters by keyword
    request: Request,
    ctx: Ctx,
    principal: Caller,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status: Annotated[OrderStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    after = decode_cursor(cursor)
    rows = await list_orders(
        ctx.pool,
        ctx.schema,
        user_id=user_id,
        status=str(status) if status else None,
        after=after,
        limit=limit,
        owner=access.visible_owner(principal),
    )
    next_cursor = encode_cursor(rows[-1].order_id) if len(rows) == limit else None
    body = {"items": [render_order(r) for r in rows], "next_cursor": next_cursor}
    return _json(body, headers=next_link(request, next_cursor))


@router.get(
    "/{order_id}/events",
    response_model=OrderHistoryOut,
    responses=_ERRORS,
    summary="Audit trail",
    dependencies=[READ],
)
async def order_events(order_id: OrderIdPath, ctx: Ctx, principal: Caller) -> Response:
    history = await ctx.repository(ORDER).history(order_id)
    state = ORDER.fold([e.event for e in history if e.event is not None])
    access.ensure_visible(principal, order_id, state.owner if isinstance(state, Order) else None)
    events = [
        {
            "event_id": e.envelope.event_id,
            "type": e.envelope.type,
            "schema_version": e.envelope.schema_version,
            "version": e.version,
            "sequence": e.sequence,
            "occurred_at": rfc3339(e.envelope.occurred_at),
            "correlation_id": e.envelope.correlation_id,
            "causation_id": e.envelope.causation_id,
            "traceparent": e.envelope.traceparent,
            "data": e.envelope.data,
        }
        for e in history
    ]
    return _json({"order_id": order_id, "events": events})


@router.post(
    "/{order_id}/cancel",
    response_model=CommandOut,
    responses={**_ERRORS, 409: _ERRORS[404], 412: _ERRORS[404], 413: _ERRORS[404], 415: _ERRORS[404]},
    summary="Cancel an order (If-Match: the version you saw, as its ETag; own orders unless "
    "orders:cancel:any)",
    dependencies=[CANCEL],
)
async def cancel_order(  # noqa: PLR0917 - FastAPI passes parameters by keyword
    order_id: OrderIdPath,
    ctx: Ctx,
    principal: Caller,
    meta: Meta,
    body: CancelOrderIn | None = None,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=64)] = None,
) -> Response:
    status, version = await commands.cancel_order(
        ctx, principal, order_id=order_id, body=body or CancelOrderIn(), meta=meta, if_match=if_match
    )
    return _json(
        {"order_id": order_id, "status": status, "version": version}, headers={"ETag": f'"{version}"'}
    )
