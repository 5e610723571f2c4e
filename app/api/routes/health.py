"""``/livez``, ``/readyz`` and ``/metrics`` of the API process.

``/readyz`` says whether THIS pod can serve: NATS and PostgreSQL answer and the process is not shutting
down. The projection's lag is reported beside them (``status: degraded`` above
``EDA_PROJECTION_LAG_DEGRADED``, and ``eda_projection_lag_events``) but never makes the pod unready.
"""

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
from app.readmodel.fold import PROJECTION
from app.readmodel.projector import consumer_lag

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


async def api_checks(ctx: AppContext) -> dict[str, CheckResult]:
    """What this pod needs to serve requests: NATS answers, PostgreSQL answers."""

    async def nats() -> CheckResult:
        if not ctx.nc.is_connected:
            return CheckResult(False, "disconnected")
        # A JetStream request, not nc.flush(timeout=): nats-py 2.16 cancels a timed-out flush's PONG
        # future and the late PONG then kills the client's read loop for good (InvalidStateError):
        # one /readyz during a NATS stall of over a second left the API connected but deaf.
        last = await asyncio.wait_for(ctx.store.last_sequence(), 1.0)
        return CheckResult(True, f"connected (EVENTS at {last})")

    async def postgres() -> CheckResult:
        await asyncio.wait_for(ctx.pool.fetchval("SELECT 1"), 1.0)
        return CheckResult(True, "ok")

    checks = {"nats": nats, "postgres": postgres}
    results = await asyncio.gather(*(_guarded(name, c) for name, c in checks.items()))
    return dict(zip(checks, results, strict=True))


async def projection_status(ctx: AppContext) -> CheckResult:
    """How far the read model is behind: reported (and exported as a metric), never a reason to be
    unready — a lagging projector is not this pod's fault, writes work, reads of one order fall back
    to the event store; making every API pod unready would turn a slow rebuild into an outage."""
    lag = await consumer_lag(ctx.nc)
    if lag is None:
        return CheckResult(False, "no projector consumer yet")
    ctx.metrics.projection_lag.labels(PROJECTION).set(lag)
    limit = ctx.settings.projection_lag_degraded
    return CheckResult(lag <= limit, f"{lag} events behind (degraded above {limit})")


async def _guarded(name: str, check: Callable[[], Awaitable[CheckResult]]) -> CheckResult:
    try:
        return await check()
    except TimeoutError:  # a stalled or busy dependency: expected now and then, a traceback says nothing
        log.warning("readiness check %s timed out", name)
        return CheckResult(False, "timed out")
    except Exception as exc:  # the message may name hosts, users or SQL: logged, never shown
        log.warning("readiness check %s failed", name, exc_info=True)
        return CheckResult(False, f"failed ({type(exc).__name__})")


@router.get("/livez", summary="Liveness")
async def livez() -> Response:
    return Response(b'{"status":"alive"}', media_type="application/json")


@router.get("/readyz", summary="Readiness: NATS, PostgreSQL, not shutting down (projection lag: reported)")
async def readyz(ctx: Ctx) -> Response:
    if ctx.shutdown.begun:  # first, without any I/O: the balancer must stop sending at once
        checks = {"shutdown": {"ok": False, "detail": "shutting down"}}
        return problem_response(
            Problem(503, "shutting-down", "Not ready", "the process is shutting down", checks=checks)
        )
    lag = _guarded("projection", lambda: asyncio.wait_for(projection_status(ctx), 3.0))
    (ok, checks), projection = await asyncio.gather(run_checks(lambda: api_checks(ctx)), lag)
    checks["projection"] = {"ok": projection.ok, "detail": projection.detail, "affects_readiness": False}
    if ok:
        status = "ready" if projection.ok else "degraded"
        return Response(orjson.dumps({"status": status, "checks": checks}), media_type="application/json")
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
    ctx.metrics.ui_streams.set(ctx.streams.active)
    return Response(generate_latest(ctx.metrics), media_type=CONTENT_TYPE_LATEST)
