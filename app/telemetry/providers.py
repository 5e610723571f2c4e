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

from opentelemetry import metrics, trace
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

from app.telemetry import roles
from app.telemetry.presample import PresetTraceIds

if TYPE_CHECKING:
    pass

TRACER_NAME = "eda"
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_configured: TelemetryHandle | None = None


@dataclass
class TelemetryHandle:
    """The process's providers; ``shutdown()`` flushes pending spans and metrics."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporting: bool
    sampler: sampling.Sampler

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


def _sampler() -> sampling.Sampler:
    if _exporting("TRACES") or os.environ.get("OTEL_TRACES_SAMPLER"):
        base = sampling._get_from_env_or_default()  # the OTEL_TRACES_SAMPLER logic
    else:
        # No exporter and no explicit sampler: nothing would ever leave the process, so new traces are
        # not recorded (a third of the API's CPU per request went into spans). Context still flows:
        # trace ids are generated and propagated (traceparent flag 00), logs still carry them, and a
        # sampled parent from upstream is still honoured.
        base = sampling.ParentBased(sampling.ALWAYS_OFF)
    return NoOrphanDbSpans(base)


def resource_for(service_name: str) -> Resource:
    """The Resource of ``service_name``; an explicit ``OTEL_SERVICE_NAME`` wins. The process environment
    is left untouched: child processes (tests, `eda dev` helpers) must not inherit a role's name."""
    return Resource.create({} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name})


def _meter_provider(resource: Resource, prometheus: MetricReader | None) -> MeterProvider:
    """A MeterProvider with the Prometheus bridge ``prometheus`` and, when an endpoint is set, OTLP."""
    readers: list[MetricReader] = [prometheus] if prometheus is not None else []
    if _exporting("METRICS"):
        readers.append(PeriodicExportingMetricReader(_metric_exporter()))
    seconds = View(
        instrument_type=Histogram,
        instrument_unit="s",
        aggregation=ExplicitBucketHistogramAggregation(SECONDS_BUCKETS),
    )
    return MeterProvider(resource=resource, metric_readers=readers, views=[seconds])


def _tracer_provider(
    resource: Resource, sampler: sampling.Sampler, processor: BatchSpanProcessor | None
) -> TracerProvider:
    # PresetTraceIds: the API's SampleFirst picks a sampled request's root trace id (presample.py)
    provider = TracerProvider(resource=resource, sampler=sampler, id_generator=PresetTraceIds())
    if processor is not None:
        provider.add_span_processor(processor)
    return provider


def configure_telemetry(
    default_service_name: str, *, asyncpg: bool = True, per_role: bool = False
) -> TelemetryHandle:
    """Install the global providers once per process (later calls return the first handle) and, unless
    ``asyncpg=False``, instrument asyncpg. ``per_role``: several roles share this process (``eda dev``);
    what runs ``in_role("saga")`` reports as ``eda-saga`` (see ``app.telemetry.roles``)."""
    global _configured  # noqa: PLW0603 - OpenTelemetry's providers are process-global by design
    if _configured is not None:
        return _configured
    resource = resource_for(default_service_name)
    exporting = _exporting("TRACES")
    sampler = _sampler()
    # one processor (one exporter thread, one queue) for every provider: each span carries its Resource
    processor = BatchSpanProcessor(_span_exporter()) if exporting else None
    tracer_provider = _tracer_provider(resource, sampler, processor)
    if per_role:

        def role_providers(service: str) -> roles.RoleProviders:
            role_resource = resource_for(service)
            reader, registry = roles.labelled_reader()
            return roles.RoleProviders(
                _tracer_provider(role_resource, sampler, processor),
                _meter_provider(role_resource, reader),
                registry,
            )

        per = roles.PerRole(role_providers, tracer_provider)
        meter_provider = _meter_provider(resource, per.process_reader())
        trace.set_tracer_provider(per.router)
        roles.install(per)
    else:
        meter_provider = _meter_provider(resource, _prometheus_reader())
        trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    if asyncpg:
        from app.telemetry.instrument import instrument_asyncpg

        instrument_asyncpg()
    _configured = TelemetryHandle(tracer_provider, meter_provider, exporting, sampler)
    return _configured


def _prometheus_reader() -> MetricReader | None:
    """The bridge to prometheus_client's default registry (``/metrics`` of every role)."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
    except ImportError:  # pragma: no cover - a dependency; kept optional for slim images
        return None
    return PrometheusMetricReader()


@functools.cache
def tracer() -> trace.Tracer:
    """eda's tracer. Cached: ``get_tracer`` builds a new tracer object per call, which cost ~7% of the
    API's CPU per request. Before ``configure_telemetry`` this is OpenTelemetry's proxy tracer, which
    follows the provider installed later, so caching it early is safe."""
    return trace.get_tracer(TRACER_NAME)


def meter() -> metrics.Meter:
    """eda's meter: the current role's (``app.telemetry.roles``) when several roles share the process,
    else the process's. Instruments belong to the role in which they are created."""
    role = roles.current()
    if role is not None:
        return role.meter_provider.get_meter(TRACER_NAME)
    return metrics.get_meter(TRACER_NAME)


def process_sampler() -> sampling.Sampler:
    """The sampler ``configure_telemetry`` installed (the SDK's default before it ran)."""
    return _configured.sampler if _configured is not None else sampling._get_from_env_or_default()


def traces_exported() -> bool:
    """Whether this process exports traces (``configure_telemetry`` found an OTLP traces endpoint)."""
    return _configured is not None and _configured.exporting
