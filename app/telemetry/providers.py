"""The process's OpenTelemetry providers, configured only from the standard ``OTEL_*`` variables.

``OTEL_SERVICE_NAME`` (default: the role's ``eda-<role>``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` and its
per-signal variants, ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]PROTOCOL`` = ``http/protobuf`` (default)
| ``grpc`` (both ingested directly by Jaeger v2 and the OpenTelemetry Collector), ``OTEL_TRACES_SAMPLER``
/ ``OTEL_TRACES_SAMPLER_ARG``, ``OTEL_BSP_*``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_EXPORTER`` /
``OTEL_METRICS_EXPORTER`` = ``none`` to switch one off. Nothing is exported when no endpoint is set;
spans are still created so trace context keeps flowing from the HTTP request through every NATS hop.

Metrics go to prometheus_client's default registry (``/metrics`` of every role) through the
``PrometheusMetricReader`` bridge and, when an endpoint is set, to OTLP as well. Histograms in seconds
get sub-millisecond-to-seconds buckets (the SDK's default buckets are made for milliseconds).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, override

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Receive, Scope, Send

TRACER_NAME = "eda"
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Probes and scrapes would drown the interesting traces (and cost a span each, several times a second).
DEFAULT_EXCLUDED_URLS = "/livez,/readyz,/metrics"
_configured: TelemetryHandle | None = None


@dataclass
class TelemetryHandle:
    """The process's providers; ``shutdown()`` flushes pending spans and metrics."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporting: bool

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.tracer_provider.shutdown()
        with contextlib.suppress(Exception):
            self.meter_provider.shutdown()


class NoOrphanDbSpans(sampling.Sampler):
    """Drop database spans that have no parent (health probes, LISTEN, purges: noise in Jaeger);
    everything else is decided by the configured sampler."""

    def __init__(self, delegate: sampling.Sampler) -> None:
        self._delegate = delegate

    @override
    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> sampling.SamplingResult:
        database = kind == SpanKind.CLIENT and any(k.startswith("db.system") for k in attributes or {})
        if database and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return sampling.SamplingResult(sampling.Decision.DROP)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    @override
    def get_description(self) -> str:
        return f"NoOrphanDbSpans{{{self._delegate.get_description()}}}"


def _protocol(signal: str) -> str:
    return (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()


def _exporting(signal: str) -> bool:
    endpoint = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint) and os.environ.get(f"OTEL_{signal}_EXPORTER", "otlp").strip() != "none"


def _span_exporter() -> Any:
    if _protocol("TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http()


def _metric_exporter() -> Any:
    if _protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    return Http()


def configure_telemetry(default_service_name: str, *, asyncpg: bool = True) -> TelemetryHandle:
    """Install the global providers once per process (later calls return the first handle) and, unless
    ``asyncpg=False``, instrument asyncpg."""
    global _configured  # noqa: PLW0603 - OpenTelemetry's providers are process-global by design
    if _configured is not None:
        return _configured
    # The process environment is left untouched: child processes (tests, `eda dev` helpers) must not
    # inherit this role's name. An explicit OTEL_SERVICE_NAME wins over the role's default.
    explicit = os.environ.get("OTEL_SERVICE_NAME")
    resource = Resource.create({} if explicit else {"service.name": default_service_name})
    exporting = _exporting("TRACES")
    if exporting or os.environ.get("OTEL_TRACES_SAMPLER"):
        base = sampling._get_from_env_or_default()  # the OTEL_TRACES_SAMPLER logic
    else:
        # No exporter and no explicit sampler: nothing would ever leave the process, so new traces are
        # not recorded (a third of the API's CPU per request went into spans). Context still flows:
        # trace ids are generated and propagated (traceparent flag 00), logs still carry them, and a
        # sampled parent from upstream is still honoured.
        base = sampling.ParentBased(sampling.ALWAYS_OFF)
    sampler = NoOrphanDbSpans(base)
    tracer_provider = TracerProvider(resource=resource, sampler=sampler)
    if exporting:
        tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter()))
    readers: list[MetricReader] = []
    with contextlib.suppress(ImportError):
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    if _exporting("METRICS"):
        readers.append(PeriodicExportingMetricReader(_metric_exporter()))
    seconds = View(
        instrument_type=Histogram,
        instrument_unit="s",
        aggregation=ExplicitBucketHistogramAggregation(SECONDS_BUCKETS),
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=readers, views=[seconds])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    if asyncpg:
        instrument_asyncpg()
    _configured = TelemetryHandle(tracer_provider, meter_provider, exporting)
    return _configured


@functools.cache
def tracer() -> trace.Tracer:
    """eda's tracer. Cached: ``get_tracer`` builds a new tracer object per call, which cost ~7% of the
    API's CPU per request. Before ``configure_telemetry`` this is OpenTelemetry's proxy tracer, which
    follows the provider installed later, so caching it early is safe."""
    return trace.get_tracer(TRACER_NAME)


def meter() -> metrics.Meter:
    return metrics.get_meter(TRACER_NAME)


def traces_exported() -> bool:
    """Whether this process exports traces (``configure_telemetry`` found an OTLP traces endpoint)."""
    return _configured is not None and _configured.exporting


class TraceContextMiddleware:
    """Pure ASGI: the caller's W3C ``traceparent``/``tracestate`` become the request's current context,
    so what the request appends continues the caller's trace — without a server span."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in (b"traceparent", b"tracestate")
        }
        if not carrier:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(propagate.extract(carrier))
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
    carry the caller's trace."""
    if not traces_exported():
        app.add_middleware(TraceContextMiddleware)
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    urls = excluded_urls or os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or DEFAULT_EXCLUDED_URLS
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=urls,
        exclude_spans=["receive", "send"],
        # its http.server.* histograms cost more per request than the span; eda_command_seconds and
        # the Prometheus metrics of the API cover latency
        meter_provider=metrics.NoOpMeterProvider(),
    )


def instrument_asyncpg() -> None:
    """Client spans for asyncpg queries (children of the current span; orphans are not sampled)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
