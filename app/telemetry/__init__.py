"""Telemetry: OpenTelemetry providers, W3C trace context through NATS, metrics and structured logs.

- ``providers``: ``configure_telemetry`` (tracer/meter providers from the standard ``OTEL_*``
  variables only); ``instrument``: FastAPI/asyncpg instrumentation.
- ``roles``: several roles in one process (``eda dev``), each under its own ``service.name``.
- ``spans``: messaging spans (``send``/``process``), trace context in NATS headers and envelopes.
- ``logs``: structlog JSON logs carrying ``trace_id``/``span_id``.

Import from this package (``from app.telemetry import producer_span``); the submodules are details.
"""

from app.telemetry.instrument import instrument_asyncpg, instrument_fastapi
from app.telemetry.logs import configure_logging
from app.telemetry.providers import (
    TelemetryHandle,
    configure_telemetry,
    meter,
    tracer,
    traces_exported,
)
from app.telemetry.roles import in_role
from app.telemetry.spans import (
    batch_consumer_span,
    consumer_span,
    current_traceparent,
    extract_context,
    inject_headers,
    mark_error,
    note_appended,
    producer_span,
    recording_appends,
    set_order_id,
    subject_template,
)

__all__ = [
    "TelemetryHandle",
    "batch_consumer_span",
    "configure_logging",
    "configure_telemetry",
    "consumer_span",
    "current_traceparent",
    "extract_context",
    "in_role",
    "inject_headers",
    "instrument_asyncpg",
    "instrument_fastapi",
    "mark_error",
    "meter",
    "note_appended",
    "producer_span",
    "recording_appends",
    "set_order_id",
    "subject_template",
    "tracer",
    "traces_exported",
]
