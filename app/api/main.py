"""The FastAPI application: ``create_app(settings)``; clients live in its lifespan, nothing at import time.

Lifespan: connect NATS, open the event store, snapshot store and id counter (provisioned by ``eda
provision``: waited for while missing), wait for the migrated schema, open the asyncpg pool and the
LISTEN connection, start the idempotency-key purge, open the HTTP client of the issuer's keys; all closed
on shutdown. ``create_app`` refuses settings that cannot authenticate anyone (``oidc`` without an
issuer); ``anonymous_dev`` is for ``eda dev`` alone (``dev_app_from_env``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.admission import SagaBacklog
from app.api.deps import AppContext
from app.api.errors import install_error_handlers
from app.api.httpmetrics import RecordHttpMetrics
from app.api.idempotency import IdempotencyStore
from app.api.ids import OrderIds
from app.api.lifecycle import ClosingConnections
from app.api.loadlimits import RateLimit, ShedOverload
from app.api.metrics import ApiMetrics
from app.api.middleware import BodyLimit, JsonBodies
from app.api.routes import ROUTERS
from app.api.security import InternalEndpoints
from app.auth.authenticator import AuthConfigError, build_authenticator, config_error
from app.domain.catalog import PRODUCT
from app.eventstore.connection import connect_nats
from app.eventstore.jetstream import open_event_store
from app.eventstore.snapshots import SnapshotStore
from app.process.gctune import tune_gc
from app.process.role import retry_start
from app.process.shutdown import Shutdown
from app.readmodel.db import create_pool
from app.readmodel.migrations import SCHEMA_WAITS, require_schema
from app.readmodel.notify import OrderNotifications
from app.service.repository import Repository
from app.service.statecache import StateCache
from app.settings import Settings
from app.telemetry import instrument_fastapi
from app.ui.live import LiveFeed
from app.ui.streams import StreamSlots

log = logging.getLogger(__name__)
PURGE_EVERY_S = 600.0

DESCRIPTION = """Orders on an event-sourced core (NATS JetStream) with a PostgreSQL read model.

Errors are RFC 9457 `application/problem+json`. Reads come from the read model (`Eda-Consistency:
read-model`) or, when it is behind or for `?as_of=`, from the event store (`Eda-Consistency:
event-store`). `ETag` is the order version (`"3"`); send it back as `If-Match` to cancel safely."""


async def _purge_loop(store: IdempotencyStore) -> None:
    while True:
        await asyncio.sleep(PURGE_EVERY_S)
        try:
            await store.purge_expired()
        except Exception:
            log.warning("idempotency-key purge failed", exc_info=True)


@contextlib.asynccontextmanager
async def open_context(
    settings: Settings,
    *,
    anonymous_dev: bool = False,
    metrics: ApiMetrics | None = None,
    shutdown: Shutdown | None = None,
) -> AsyncIterator[AppContext]:
    """Every client of the API, opened in order and closed in reverse."""
    shutdown = shutdown or Shutdown()
    metrics = metrics or ApiMetrics()
    dsn = settings.database_url.get_secret_value()
    if settings.auth_mode == "disabled":
        log.warning("EDA_AUTH_MODE=disabled: the API authenticates nobody; every caller has every scope")
    async with contextlib.AsyncExitStack() as stack:
        http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
        stack.push_async_callback(http.aclose)
        auth = build_authenticator(settings, http, anonymous_dev=anonymous_dev)
        nc = await retry_start("api: connect", lambda: connect_nats(settings, name="eda-api"))
        stack.push_async_callback(nc.close)
        # the provisioned streams and bucket, the migrated schema: waited for (with the reason logged)
        store = await retry_start("api: event store", lambda: open_event_store(nc, settings))
        stack.push_async_callback(store.close)
        snapshots = await retry_start("api: snapshots", lambda: SnapshotStore.open(nc.jetstream()))
        ids = await retry_start("api: order ids", lambda: OrderIds.open(nc))
        await retry_start(
            "api: database", lambda: require_schema(dsn, settings.readmodel_schema), waiting_for=SCHEMA_WAITS
        )
        pool = await create_pool(
            dsn,
            size=settings.db_pool_size,
            acquire_timeout=settings.db_acquire_timeout_s,
            command_timeout=settings.db_command_timeout_s,
        )
        stack.push_async_callback(pool.close)
        notifications = OrderNotifications(dsn)
        await notifications.start()
        stack.push_async_callback(notifications.close)
        idempotency = IdempotencyStore(pool, settings.idempotency_ttl_s)
        purge = asyncio.create_task(_purge_loop(idempotency), name="idempotency-purge")
        stack.callback(purge.cancel)
        live = LiveFeed(nc)
        stack.push_async_callback(live.close)
        backlog = SagaBacklog(nc.jetstream(timeout=2.0), settings.admission_saga_backlog)
        sampling = asyncio.create_task(backlog.run(), name="saga-backlog")
        stack.callback(sampling.cancel)
        yield AppContext(
            settings=settings,
            nc=nc,
            store=store,
            snapshots=snapshots,
            pool=pool,
            ids=ids,
            notifications=notifications,
            idempotency=idempotency,
            metrics=metrics,
            auth=auth,
            products=StateCache(store, Repository(store, PRODUCT), size=10_000),
            shutdown=shutdown,
            streams=StreamSlots(
                settings.stream_cap(), shutdown, lambda: metrics.rejections.labels("streams").inc()
            ),
            live=live,
            backlog=backlog,
        )


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; extension members (errors, checks, code) may be present.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}


def _problem_openapi(app: FastAPI) -> None:
    """Document every 4xx/5xx response of every route (ours and other packages') as problem+json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    if code[:1] in ("4", "5"):
                        response["content"] = problem
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings, *, anonymous_dev: bool = False, shutdown: Shutdown | None = None
) -> FastAPI:
    """The API application for ``settings``; connects on startup (lifespan). ``anonymous_dev``: requests
    without a token from loopback act with every scope (``eda dev`` only). ``shutdown``: the process's
    shutdown state, begun by whoever runs the server (``app.runtime.server``)."""
    problem = config_error(settings)
    if problem is not None:
        raise AuthConfigError(problem)
    shutdown = shutdown or Shutdown()

    metrics = ApiMetrics()  # made here: the HTTP middleware records into it before the lifespan runs

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_context(
            settings, anonymous_dev=anonymous_dev, metrics=metrics, shutdown=shutdown
        ) as ctx:
            app.state.ctx = ctx
            tune_gc(settings.gc_gen0_threshold)
            yield

    # FastAPI's native telemetry off: the server spans come from opentelemetry-instrumentation-fastapi
    # (instrument_fastapi below); with both, every request also paid for FastAPI's wrapper.
    app = FastAPI(
        title="eda",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(JsonBodies)  # a non-JSON body is refused before it is read
    app.add_middleware(InternalEndpoints, open_endpoints=settings.open_endpoints())
    app.add_middleware(RateLimit, default=settings.rate_limit, trusted=settings.rate_limit_trusted)
    app.add_middleware(ShedOverload)  # uvicorn's concurrency limit, as a problem
    app.add_middleware(RecordHttpMetrics, metrics=metrics.http)  # counts 413s, 429s and 503s too
    app.add_middleware(ClosingConnections, shutdown=shutdown)  # outermost: every response, problems too
    _problem_openapi(app)
    instrument_fastapi(app)  # server spans; /livez, /readyz, /metrics excluded
    return app


def app_from_env(shutdown: Shutdown | None = None) -> FastAPI:
    """uvicorn factory (``app.api.main:app_from_env``): the app configured from the ``EDA_*`` environment;
    ``shutdown``: the process's shutdown state (``app.runtime.server`` passes its own)."""
    return create_app(Settings(), shutdown=shutdown)


def dev_app_from_env(shutdown: Shutdown | None = None) -> FastAPI:
    """``eda dev``'s uvicorn factory: as ``app_from_env``, plus the anonymous loopback dev principal.
    Not reachable from ``eda api``, the image's entry points or the chart."""
    return create_app(Settings(), anonymous_dev=True, shutdown=shutdown)
