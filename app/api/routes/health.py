"""``/livez``, ``/readyz`` (NATS, PostgreSQL, projection lag) and ``/metrics`` of the API process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from app.api.deps import AppContext, Ctx
from app.api.errors import Problem, problem_response
from app.process.health import CheckResult, run_checks
from app.readmodel.projections import PROJECTION
from app.readmodel.projector import consumer_lag

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


async def api_checks(ctx: AppContext) -> dict[str, CheckResult]:
    """Readiness of the API: NATS answers, PostgreSQL answers, the projection is not too far behind."""

    async def nats() -> CheckResult:
        if not ctx.nc.is_connected:
            return CheckResult(False, "disconnected")
        await ctx.nc.flush(timeout=1)
        return CheckResult(True, "connected")

    async def postgres() -> CheckResult:
        await asyncio.wait_for(ctx.pool.fetchval("SELECT 1"), 1.0)
        return CheckResult(True, "ok")

    async def projection() -> CheckResult:
        lag = await consumer_lag(ctx.nc)
        if lag is None:
            return CheckResult(False, "no projector consumer yet")
        ctx.metrics.projection_lag.labels(PROJECTION).set(lag)
        limit = ctx.settings.readyz_max_lag
        return CheckResult(lag <= limit, f"{lag} events behind (limit {limit})")

    async def guarded(check: Callable[[], Awaitable[CheckResult]]) -> CheckResult:
        try:
            return await check()
        except Exception as exc:  # the message may name hosts, users or SQL: logged, never shown
            log.warning("readiness check failed", exc_info=True)
            return CheckResult(False, f"failed ({type(exc).__name__})")

    names = ("nats", "postgres", "projection")
    results = await asyncio.gather(*(guarded(c) for c in (nats, postgres, projection)))
    return dict(zip(names, results, strict=True))


@router.get("/livez", summary="Liveness")
async def livez() -> Response:
    return Response(b'{"status":"alive"}', media_type="application/json")


@router.get("/readyz", summary="Readiness: NATS, PostgreSQL, projection lag")
async def readyz(ctx: Ctx) -> Response:
    ok, checks = await run_checks(lambda: api_checks(ctx))
    if ok:
        return Response(orjson.dumps({"status": "ready", "checks": checks}), media_type="application/json")
    return problem_response(
        Problem(503, "not-ready", "Not ready", "a dependency check failed", checks=checks)
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(ctx: Ctx) -> Response:
    try:
        lag = await consumer_lag(ctx.nc)
    except Exception:
        lag = None
    if lag is not None:
        ctx.metrics.projection_lag.labels(PROJECTION).set(lag)
    return Response(generate_latest(ctx.metrics), media_type=CONTENT_TYPE_LATEST)
