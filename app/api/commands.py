"""Order commands of the API: create (with ids and Idempotency-Key) and cancel (with ``If-Match``).

Create validates the command purely BEFORE allocating an id (invalid input burns no id), takes a fresh
id from the counter and appends ``OrderCreated`` at expected version 0 without loading anything (a new
id has no stream). With an Idempotency-Key the id comes from the key's claim and the command runs
through ``Repository.execute`` (idempotent: a retry of a half-done attempt appends nothing).
"""

from __future__ import annotations

import time
from decimal import Decimal

import orjson

from app.api.deps import AppContext
from app.api.errors import Problem
from app.api.idempotency import StoredResponse, fingerprint
from app.api.schemas import CancelOrderIn, CreateOrderIn
from app.domain.order import INITIAL, ORDER, CancelOrder, CreateOrder, Order, OrderItem
from app.eventstore.envelope import NEW, Metadata, utcnow
from app.eventstore.ports import ConcurrencyError
from app.service.repository import Loaded
from app.telemetry import set_order_id

ID_COLLISION_RETRIES = 5


def _command(order_id: int, body: CreateOrderIn) -> CreateOrder:
    return CreateOrder(
        order_id=order_id,
        user_id=body.user_id,
        items=tuple(OrderItem(product_id=i.product_id, quantity=i.quantity) for i in body.items),
        amount=Decimal(str(body.amount)),
        currency=body.currency,
        at=utcnow(),
    )


def _created(order_id: int) -> StoredResponse:
    body = orjson.dumps({"order_id": order_id, "status": "created", "version": 1})
    return StoredResponse(201, body, {"Location": f"/api/v1/orders/{order_id}", "ETag": '"1"'})


async def _create_new(ctx: AppContext, body: CreateOrderIn, meta: Metadata) -> int:
    repo = ctx.repository(ORDER)
    for _ in range(ID_COLLISION_RETRIES):
        order_id = await ctx.ids.next()
        set_order_id(order_id)
        events = ORDER.decide(_command(order_id, body), INITIAL)
        try:
            await repo.append(order_id, events, Loaded(INITIAL, NEW), meta)
        except ConcurrencyError:  # the id exists already: the counter was reset; take the next one
            continue
        return order_id
    raise Problem(503, "id-allocation", "Service unavailable", "could not allocate a fresh order id")


async def create_order(
    ctx: AppContext, body: CreateOrderIn, meta: Metadata, key: str | None, path: str
) -> StoredResponse:
    """Create an order; returns the response to send (maybe a replay of an earlier one)."""
    ORDER.decide(_command(1, body), INITIAL)  # pure validation before any id is spent
    started = time.perf_counter()
    outcome = "error"
    try:
        if key is None:
            response = _created(await _create_new(ctx, body, meta))
        else:
            print_ = fingerprint("POST", path, body.model_dump(mode="json"))
            claim = await ctx.idempotency.claim(key, print_, ctx.ids.next)
            set_order_id(claim.order_id)
            if claim.replay is not None:
                ctx.metrics.idempotent_replays.inc()
                outcome = "replayed"
                replay = claim.replay
                return StoredResponse(
                    replay.status, replay.body, replay.headers | {"Idempotent-Replayed": "true"}
                )
            await ctx.repository(ORDER).execute(
                claim.order_id, _command(claim.order_id, body), meta, retries=3
            )
            response = _created(claim.order_id)
            await ctx.idempotency.complete(key, response)
        outcome = "ok"
        return response
    finally:
        ctx.metrics.commands.labels("CreateOrder", outcome).inc()
        ctx.metrics.command_seconds.labels("CreateOrder").observe(time.perf_counter() - started)


def parse_if_match(value: str | None) -> int | None:
    """``If-Match: "3"`` (or ``W/"3"``) → 3; ``*`` or absent → ``None``; anything else can never match."""
    if value is None or value.strip() == "*":
        return None
    tag = value.split(",")[0].strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit()):  # isdigit() alone accepts "²", which int() refuses
        raise Problem(412, "stale-version", "Precondition failed", "If-Match does not name a version")
    return int(tag)


async def cancel_order(
    ctx: AppContext, order_id: int, body: CancelOrderIn, meta: Metadata, if_match: str | None
) -> tuple[str, int]:
    """Cancel; returns (status, version). Repeating a cancel of a cancelled order changes nothing."""
    expected = parse_if_match(if_match)
    set_order_id(order_id)
    started = time.perf_counter()
    outcome = "error"
    try:
        command = CancelOrder(order_id=order_id, reason=body.reason, at=utcnow())
        done = await ctx.repository(ORDER).execute(order_id, command, meta, expected_version=expected)
        outcome = "ok" if done.events else "noop"
        assert isinstance(done.state, Order)
        return str(done.state.status), done.position.version
    finally:
        ctx.metrics.commands.labels("CancelOrder", outcome).inc()
        ctx.metrics.command_seconds.labels("CancelOrder").observe(time.perf_counter() - started)
