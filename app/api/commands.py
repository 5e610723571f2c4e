"""Order commands of the API: create (with ids and Idempotency-Key) and cancel (with ``If-Match``).

Create decides for whom the order is placed (``access.placement``) and what it costs (``pricing``), and
validates the command purely, all BEFORE allocating an id (refused input burns no id); then it takes a
fresh id from the counter and appends ``OrderCreated`` at expected version 0 without loading anything
(a new id has no stream: ``assume_new``, no retry). With an Idempotency-Key (scoped to the caller) the
id comes from the key's claim and the command runs through the ``CommandHandler`` (idempotent: a retry
of a half-done attempt appends nothing). Cancel is limited to the caller's own orders unless it may
cancel any.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

import orjson

from app.api import access, pricing, reads
from app.api.deps import AppContext
from app.api.errors import Problem
from app.api.idempotency import StoredResponse, fingerprint
from app.api.schemas import CancelOrderIn, CreateOrderIn
from app.auth.scopes import Principal
from app.domain.common import NotFound
from app.domain.order import INITIAL, ORDER, CancelOrder, CreateOrder, Order
from app.eventstore.envelope import Metadata, StreamId, utcnow
from app.service.handler import NO_RETRY, RetriesExhausted, RetryPolicy, VersionMismatch
from app.telemetry import set_order_id

# A taken id means the counter was reset: take the next one at once (no backoff), a few times.
ID_COLLISIONS = RetryPolicy(attempts=5, first_delay_s=0.0, max_delay_s=0.0)


@dataclass(frozen=True, slots=True)
class _Order:
    """What the API decided about a create request: for whom, and at which amount."""

    body: CreateOrderIn
    placement: access.Placement
    amount: Decimal

    def command(self, order_id: int) -> CreateOrder:
        return CreateOrder(
            order_id=order_id,
            user_id=self.placement.user_id,
            owner=self.placement.owner,
            items=pricing.order_items(self.body),
            amount=self.amount,
            currency=self.body.currency,
            at=utcnow(),
        )


def _created(order_id: int) -> StoredResponse:
    body = orjson.dumps({"order_id": order_id, "status": "created", "version": 1})
    return StoredResponse(201, body, {"Location": f"/api/v1/orders/{order_id}", "ETag": '"1"'})


async def _create_new(ctx: AppContext, order: _Order, meta: Metadata) -> int:
    orders = ctx.handler(ORDER, retry=NO_RETRY)

    async def attempt(_fresh: bool) -> int:
        order_id = await ctx.ids.next()
        set_order_id(order_id)
        await orders.execute(order_id, order.command(order_id), meta, assume_new=True)
        return order_id

    try:
        return await ID_COLLISIONS.run(attempt, StreamId(ORDER.aggregate_type, "new"))
    except RetriesExhausted as exc:
        raise Problem(
            503, "id-allocation", "Service unavailable", "could not allocate a fresh order id"
        ) from exc


async def create_order(
    ctx: AppContext,
    principal: Principal,
    *,
    body: CreateOrderIn,
    meta: Metadata,
    key: str | None,
    path: str,
) -> StoredResponse:
    """Create an order; returns the response to send (maybe a replay of an earlier one)."""
    started = time.perf_counter()
    outcome = "error"
    try:
        placement = access.placement(principal, body)
        order = _Order(body, placement, await pricing.order_amount(ctx, body))
        ORDER.decide(order.command(1), INITIAL)  # pure validation before any id is spent
        try:  # a valid order the saga could not start soon: refused before any id or key is spent
            ctx.backlog.admit()
        except Problem:
            ctx.metrics.rejections.labels("saga_backlog").inc()
            outcome = "refused"
            raise
        if key is None:
            response = _created(await _create_new(ctx, order, meta))
        else:
            print_ = fingerprint("POST", path, body.model_dump(mode="json"))
            claim = await ctx.idempotency.claim(principal.subject, key, print_, ctx.ids.next)
            set_order_id(claim.order_id)
            if claim.replay is not None:
                ctx.metrics.idempotent_replays.inc()
                outcome = "replayed"
                replay = claim.replay
                return StoredResponse(
                    replay.status, replay.body, replay.headers | {"Idempotent-Replayed": "true"}
                )
            await ctx.handler(ORDER).execute(claim.order_id, order.command(claim.order_id), meta)
            response = _created(claim.order_id)
            await ctx.idempotency.complete(principal.subject, key, response)
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
    ctx: AppContext,
    principal: Principal,
    *,
    order_id: int,
    body: CancelOrderIn,
    meta: Metadata,
    if_match: str | None,
) -> tuple[str, int]:
    """Cancel; returns (status, version). Repeating a cancel of a cancelled order changes nothing.
    Another subject's order is "not found" unless the caller may cancel any (the decider checks)."""
    expected = parse_if_match(if_match)
    set_order_id(order_id)
    started = time.perf_counter()
    outcome = "error"
    try:
        owner = access.cancel_owner(principal)
        command = CancelOrder(order_id=order_id, reason=body.reason, at=utcnow(), owner=owner)
        try:
            done = await ctx.handler(ORDER).execute(order_id, command, meta, expected_version=expected)
        except VersionMismatch:  # checked before the decider's owner check: must not disclose an order
            known = await reads.owner_of(ctx, order_id)
            if known is None or (owner is not None and known != owner):
                raise access.not_found(order_id) from None
            raise
        except NotFound:  # missing, or another subject's: the same answer as a GET
            raise access.not_found(order_id) from None
        outcome = "ok" if done.events else "noop"
        assert isinstance(done.state, Order)
        return str(done.state.status), done.position.version
    finally:
        ctx.metrics.commands.labels("CancelOrder", outcome).inc()
        ctx.metrics.command_seconds.labels("CancelOrder").observe(time.perf_counter() - started)
