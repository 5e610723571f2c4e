"""Shared clients of the API process (``AppContext`` on ``app.state.ctx``) and their FastAPI dependency.

Routes take ``ctx: Ctx`` and use ``ctx.nc``, ``ctx.store``, ``ctx.snapshots``, ``ctx.pool``,
``ctx.settings``, ``ctx.schema``, ``ctx.repository(decider)`` (reads: a ``Repository`` on these stores),
``ctx.handler(decider)`` (commands: a ``CommandHandler``), ``ctx.auth`` (the request authenticator),
``ctx.products`` (catalog states, for prices), ``ctx.shutdown`` (the process's shutdown state),
``ctx.streams`` (the console's stream slots) and ``ctx.backlog`` (admission of new orders).
Everything is created in the app's lifespan (``app.api.main``), nothing at import time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from nats.aio.client import Client as NATS

from app.api.admission import SagaBacklog
from app.api.idempotency import IdempotencyStore
from app.api.ids import IdSource
from app.api.metrics import ApiMetrics
from app.auth.authenticator import Authenticator
from app.domain.catalog import ProductState
from app.domain.common import Decider
from app.eventstore.envelope import Metadata
from app.eventstore.ports import EventStore
from app.eventstore.snapshots import SnapshotStore
from app.process.shutdown import Shutdown
from app.readmodel.notify import OrderNotifications
from app.service.handler import CommandHandler, RetryPolicy
from app.service.repository import Repository
from app.service.statecache import StateCache
from app.settings import Settings
from app.telemetry import set_order_id, traces_exported
from app.ui.live import LiveFeed
from app.ui.streams import StreamSlots


@dataclass
class AppContext:
    """Clients shared by all requests of one API process."""

    settings: Settings
    nc: NATS
    store: EventStore
    snapshots: SnapshotStore
    pool: asyncpg.Pool
    ids: IdSource
    notifications: OrderNotifications
    idempotency: IdempotencyStore
    metrics: ApiMetrics
    auth: Authenticator
    products: StateCache[ProductState]
    shutdown: Shutdown  # begun on SIGTERM: /readyz fails, responses close their connection
    streams: StreamSlots  # the console's concurrent live-feed streams (EDA_UI_MAX_STREAMS)
    live: LiveFeed  # the console's one shared JetStream consumer, fanned out to its SSE connections
    backlog: SagaBacklog  # admission of new orders by the saga's backlog (EDA_ADMISSION_SAGA_BACKLOG)

    @property
    def schema(self) -> str:
        return self.settings.readmodel_schema

    def repository[C, E, S](self, decider: Decider[C, E, S]) -> Repository[C, E, S]:
        return Repository(self.store, decider, self.snapshots)

    def handler[C, E, S](
        self, decider: Decider[C, E, S], retry: RetryPolicy | None = None
    ) -> CommandHandler[C, E, S]:
        return CommandHandler(
            self.store,
            decider,
            snapshots=self.snapshots,
            snapshot_every=self.settings.snapshot_every,
            retry=retry,
        )


async def get_ctx(request: Request) -> AppContext:  # async: sync deps run in a thread pool
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]


async def request_metadata(request: Request) -> Metadata:
    """Correlation id (``X-Correlation-Id`` or ``X-Request-Id``, else new) and W3C trace context."""
    headers = request.headers
    correlation = headers.get("x-correlation-id") or headers.get("x-request-id") or str(uuid.uuid4())
    return Metadata(
        correlation_id=correlation[:128],
        traceparent=headers.get("traceparent"),
        tracestate=headers.get("tracestate"),
    )


Meta = Annotated[Metadata, Depends(request_metadata)]

__all__ = ["AppContext", "Ctx", "Meta", "get_ctx", "request_metadata"]


async def tag_order_span(request: Request) -> None:
    """Router dependency: a route with an ``{order_id}`` path parameter tags the request's SERVER span
    with ``order.id`` (commands tag it themselves), so Jaeger finds every request about an order."""
    order_id = request.path_params.get("order_id")
    if order_id is not None and traces_exported():
        set_order_id(order_id)
