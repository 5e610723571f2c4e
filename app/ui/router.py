"""HTTP routes of the web console under ``/ui`` (read-only: GET only, none in the OpenAPI schema).

Pages (``/ui``, ``/ui/orders``, ``/ui/orders/{id}``, ``/ui/health``) all serve the same static shell;
``/ui/static/*`` its assets from the package; ``/ui/api/*`` the JSON the pages render and the SSE feed.
Thin: parse, call one function, map the result.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from app.ui.access import login_config
from app.ui.context import UiContext, UiRoute, not_found, problem, ui_context
from app.ui.health import LagHistory, health_snapshot
from app.ui.live import Feed
from app.ui.orders import (
    STATUSES,
    OrderQuery,
    list_orders,
    order_detail,
    search_problem,
    wait_for_checkpoint,
)

router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False, tags=["console"])

Ctx = Annotated[UiContext, Depends(ui_context)]
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
_NO_STORE = {"Cache-Control": "no-store"}
# order ids are PostgreSQL bigints: a larger one would fail in the database (DataError → 500)
OrderId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=_NO_STORE)


def _static(name: str) -> bytes | None:
    node = resources.files("app.ui").joinpath("static")
    for part in name.split("/"):
        if part in ("", ".", "..") or part.startswith("."):
            return None
        node = node.joinpath(part)
    return node.read_bytes() if node.is_file() else None


def _shell() -> Response:
    body = _static("index.html")
    assert body is not None, "app/ui/static/index.html is part of the package"
    return Response(body, media_type="text/html; charset=utf-8", headers=_NO_STORE)


@router.get("")
@router.get("/")
@router.get("/orders")
@router.get("/health")
async def page() -> Response:
    return _shell()


@router.get("/orders/{order_id}")
async def order_page(order_id: int) -> Response:
    return _shell()


@router.get("/static/{name:path}")
async def static(name: str) -> Response:
    body = _static(name)
    suffix = name[name.rfind(".") :] if "." in name else ""
    if body is None or suffix not in _TYPES:
        return not_found()
    return Response(body, media_type=_TYPES[suffix], headers={"Cache-Control": "no-cache"})


@router.get("/api/auth")
async def auth(ctx: Ctx) -> Response:
    """How the page signs in (public: no data)."""
    return _json(await login_config(ctx))


@router.get("/api/orders")
async def orders(
    ctx: Ctx,
    *,
    q: Annotated[str, Query(max_length=100)] = "",
    status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
    user_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    cursor: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    min_sequence: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    schema = ctx.settings.readmodel_schema
    refused = search_problem(q)
    if refused is not None:
        return problem(422, "Unprocessable Content", refused, slug="search-too-short")
    if min_sequence:
        await wait_for_checkpoint(ctx.pool, schema, min_sequence)
    query = OrderQuery(q=q, status=status, user_id=user_id, before=cursor, limit=limit)
    return _json(await list_orders(ctx.pool, schema, query))


@router.get("/api/orders/{order_id}")
async def order(ctx: Ctx, order_id: OrderId) -> Response:
    settings = ctx.settings
    detail = await order_detail(
        ctx.pool, ctx.store, settings.readmodel_schema, order_id, settings.jaeger_ui_url
    )
    if detail is None:
        return not_found(f"order {order_id} not found")
    return _json(detail)


@router.get("/api/health")
async def health(ctx: Ctx, request: Request) -> Response:
    history: LagHistory | None = getattr(request.app.state, "ui_lag_history", None)
    if history is None:
        history = request.app.state.ui_lag_history = LagHistory()
    return _json(await health_snapshot(ctx.nc, ctx.pool, ctx.settings.readmodel_schema, history))


@router.get("/api/stream")
async def stream(
    ctx: Ctx,
    order_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> Response:
    if not ctx.streams.available:  # refused before any work (no NATS request, no consumer)
        return _too_many_streams(ctx)
    feed = Feed.for_page(order_id, last_event_id)
    last = await ctx.store.last_sequence()
    response = ctx.streams.open(ctx.live.events(feed, last))
    return response if response is not None else _too_many_streams(ctx)


def _too_many_streams(ctx: UiContext) -> Response:
    detail = f"this server streams to at most {ctx.streams.capacity} consoles at once; retry later"
    return problem(503, "Service Unavailable", detail, slug="too-many-streams", headers={"Retry-After": "5"})
