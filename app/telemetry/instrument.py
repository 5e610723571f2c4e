"""Instrumentation of third-party libraries: FastAPI server spans (or only the caller's trace context
when this process exports no traces) and asyncpg client spans."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import metrics

from app.telemetry.presample import SampleFirst, caller_context
from app.telemetry.providers import process_sampler, traces_exported

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler
    from starlette.types import ASGIApp, Receive, Scope, Send

# Probes and scrapes would drown the interesting traces (and cost a span each, several times a second).
DEFAULT_EXCLUDED_URLS = "/livez,/readyz,/metrics"


class TraceContextMiddleware:
    """Pure ASGI: the caller's W3C ``traceparent``/``tracestate`` become the request's current context,
    so what the request appends continues the caller's trace — without a server span."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parent = caller_context(scope)
        if parent is None:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(parent)
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)


def instrument_fastapi(app: FastAPI, excluded_urls: str | None = None) -> None:
    """Server spans for every route but the probes and ``/metrics`` (``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS``
    overrides); no extra spans per ASGI send/receive message, no per-request HTTP metrics.

    Only when this process exports traces: otherwise nobody could ever see a server span, and the
    instrumentation's per-request work (route lookup, attributes, a span even when not sampled) was
    ~20 % of the API's CPU (benchmarks/api_load.py: +20 to 27 % creates/s without it). Then only the
    caller's trace context is taken from the request (``TraceContextMiddleware``), so events still
    carry the caller's trace. When exporting, only the requests the sampler records pay for the
    instrumentation (``sample_first``)."""
    if not traces_exported():
        app.add_middleware(TraceContextMiddleware)
        return
    urls = excluded_urls or os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or DEFAULT_EXCLUDED_URLS
    sample_first(app, process_sampler(), urls)


def sample_first(
    app: FastAPI, sampler: Sampler, excluded_urls: str, tracer_provider: TracerProvider | None = None
) -> None:
    """Instrument ``app`` with opentelemetry-instrumentation-fastapi behind ``SampleFirst``: the
    instrumented middleware stack serves only the requests ``sampler`` records (``presample``)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls=excluded_urls,
        exclude_spans=["receive", "send"],
        # its http.server.* histograms cost more per request than the span; eda_command_seconds and
        # the Prometheus metrics of the API cover latency
        meter_provider=metrics.NoOpMeterProvider(),
    )
    instrumented = app.build_middleware_stack  # the instrumentor's, on this instance

    def build() -> ASGIApp:  # Starlette builds its stack on the first call (the lifespan)
        plain = type(app).build_middleware_stack(app)
        return SampleFirst(plain, instrumented(), sampler)

    app.build_middleware_stack = build  # type: ignore[method-assign]


def instrument_asyncpg() -> None:
    """Client spans for asyncpg queries (children of the current span; orphans are not sampled)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
