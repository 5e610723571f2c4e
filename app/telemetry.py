"""Telemetry: OpenTelemetry tracer/meter providers, W3C trace context through NATS, structured logs.

Configured only from the standard ``OTEL_*`` variables (``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_ENDPOINT``
and its per-signal variants, ``OTEL_EXPORTER_OTLP_PROTOCOL`` = ``grpc`` | ``http/protobuf``,
``OTEL_TRACES_SAMPLER``...). Nothing is exported when no endpoint is set; spans are still created so
trace context keeps flowing from the HTTP request through every NATS hop.

Messaging spans follow the semantic conventions: ``send <destination>`` (PRODUCER) and
``process <destination>`` (CONSUMER), ``messaging.system=nats``, ``messaging.destination.name`` (the
subject), ``messaging.destination.template`` (the subject with the id as ``{id}``, also used in the span
name to keep cardinality low), ``messaging.message.id``; plus ``order.id`` where known.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

TRACER_NAME = "eda"
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


def _protocol(signal: str) -> str:
    return (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()


def _endpoint_set(signal: str) -> bool:
    return bool(
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def _span_exporter() -> Any:
    if _protocol("TRACES") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


def _metric_exporter() -> Any:
    if _protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter()


def configure_telemetry(default_service_name: str) -> TelemetryHandle:
    """Install the global providers once per process (later calls return the first handle).

    Metrics go to the Prometheus client registry (served on ``/metrics``) and, when an OTLP endpoint is
    set, to OTLP as well.
    """
    global _configured  # noqa: PLW0603 - OpenTelemetry's providers are process-global by design
    if _configured is not None:
        return _configured
    os.environ.setdefault("OTEL_SERVICE_NAME", default_service_name)
    resource = Resource.create()
    tracer_provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
    exporting = _endpoint_set("TRACES") and os.environ.get("OTEL_TRACES_EXPORTER", "otlp") != "none"
    if exporting:
        tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter()))
    readers: list[MetricReader] = []
    with contextlib.suppress(ImportError):
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    if _endpoint_set("METRICS") and os.environ.get("OTEL_METRICS_EXPORTER", "otlp") != "none":
        readers.append(PeriodicExportingMetricReader(_metric_exporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _configured = TelemetryHandle(tracer_provider, meter_provider, exporting)
    return _configured


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def meter() -> metrics.Meter:
    return metrics.get_meter(TRACER_NAME)


# -- trace context through NATS --------------------------------------------------------------------


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Add the current context's ``traceparent``/``tracestate`` to ``headers`` (returned)."""
    carrier = headers if headers is not None else {}
    propagate.inject(carrier)
    return carrier


def current_traceparent() -> tuple[str | None, str | None]:
    """The current span's W3C ``traceparent`` and ``tracestate`` (``None`` without a valid span)."""
    carrier = inject_headers({})
    return carrier.get("traceparent"), carrier.get("tracestate")


def extract_context(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context:
    """A context whose parent is the span named by ``traceparent`` (empty context if none)."""
    carrier: dict[str, str] = {}
    if traceparent:
        carrier["traceparent"] = traceparent
    if tracestate:
        carrier["tracestate"] = tracestate
    return propagate.extract(carrier)


def subject_template(subject: str) -> str:
    """``events.order.42`` → ``events.order.{id}``; ``cmd.payment.7`` → ``cmd.payment.{id}``."""
    parts = subject.split(".")
    if len(parts) >= 3:
        return ".".join([*parts[:2], "{id}"])
    return subject


def _messaging_attrs(subject: str, message_id: str | None, order_id: str | int | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.destination.template": subject_template(subject),
    }
    if message_id:
        attrs["messaging.message.id"] = message_id
    if order_id is not None:
        attrs["order.id"] = str(order_id)
    return attrs


@contextlib.contextmanager
def producer_span(
    subject: str,
    *,
    message_id: str | None = None,
    order_id: str | int | None = None,
    batch_size: int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """``send <template>`` PRODUCER span; inject its context into what you publish inside it."""
    attrs = _messaging_attrs(subject, message_id, order_id)
    attrs["messaging.operation.type"] = "send"
    if batch_size is not None and batch_size > 1:
        attrs["messaging.batch.message_count"] = batch_size
    attrs.update(attributes or {})
    with tracer().start_as_current_span(
        f"send {subject_template(subject)}", kind=SpanKind.PRODUCER, attributes=attrs
    ) as span:
        yield span


@contextlib.contextmanager
def consumer_span(
    subject: str,
    *,
    traceparent: str | None,
    tracestate: str | None = None,
    message_id: str | None = None,
    order_id: str | int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """``process <template>`` CONSUMER span, a child of the message's producer (one trace end to end)."""
    attrs = _messaging_attrs(subject, message_id, order_id)
    attrs["messaging.operation.type"] = "process"
    attrs.update(attributes or {})
    parent = extract_context(traceparent, tracestate)
    with tracer().start_as_current_span(
        f"process {subject_template(subject)}", context=parent, kind=SpanKind.CONSUMER, attributes=attrs
    ) as span:
        yield span


@contextlib.contextmanager
def batch_consumer_span(
    subject_filter: str, traceparents: Sequence[str | None], *, attributes: Mapping[str, Any] | None = None
) -> Iterator[trace.Span]:
    """``process <filter>`` CONSUMER span for a batch (projector, rebuild): a new trace whose links point
    at every message's producer span, as the conventions prescribe for batch receivers."""
    links = []
    for tp in traceparents:
        if not tp:
            continue
        ctx = trace.get_current_span(extract_context(tp)).get_span_context()
        if ctx.is_valid:
            links.append(Link(ctx))
    attrs: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.destination.name": subject_filter,
        "messaging.operation.type": "process",
        "messaging.batch.message_count": len(traceparents),
    }
    attrs.update(attributes or {})
    with tracer().start_as_current_span(
        f"process {subject_filter}",
        context=otel_context.Context(),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attrs,
    ) as span:
        yield span


def mark_error(span: trace.Span, exc: BaseException | str) -> None:
    """Record a failure on ``span`` (error status + exception event) the way Jaeger shows it."""
    if isinstance(exc, BaseException):
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
    else:
        span.set_status(Status(StatusCode.ERROR, exc))
    span.set_attribute("error.type", type(exc).__name__ if isinstance(exc, BaseException) else exc)


# -- structured logs -------------------------------------------------------------------------------


def _add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """JSON logs on stderr (structlog), ``trace_id``/``span_id`` added inside spans; stdlib loggers
    (uvicorn, nats, kopf) go through the same pipeline."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_ids,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
