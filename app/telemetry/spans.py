"""Messaging spans and W3C trace context through NATS (headers and the event envelope).

Spans follow the messaging semantic conventions: ``send <destination>`` (PRODUCER) and
``process <destination>`` (CONSUMER), ``messaging.system=nats``, ``messaging.destination.name`` (the
subject), ``messaging.destination.template`` (the subject with the id as ``{id}``, also used in the span
name to keep cardinality low), ``messaging.message.id``; plus ``order.id`` where known. A consumer's
span is a CHILD of the message's producer span, so one order's saga is one trace; batch consumers
(projector, rebuild) start a new trace LINKED to every message's producer.

Under an UNSAMPLED parent (a ``traceparent`` with flags ``00``) and a parent-based sampler, a span
would be a non-recording span nobody sees; ``producer_span`` and ``consumer_span`` then create none and
run under the parent's context itself (the same trace id flows on, and into the logs). This is the
common case: with the chart's ratio sampler nine sagas in ten are unsampled, and without an exporter
all are — and building a span that is dropped cost the saga role ~10 % of its CPU per message.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from app.telemetry.providers import process_sampler, tracer

MAX_LINKS = 128  # the SDK's default span link limit: parsing more traceparents would be wasted work
_order: contextvars.ContextVar[str | None] = contextvars.ContextVar("eda_order_id", default=None)
_appended: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("eda_appended", default=None)


@contextlib.contextmanager
def recording_appends() -> Iterator[list[str]]:
    """Collect the types of the events appended inside the block (a consumer judging its outcome)."""
    types: list[str] = []
    token = _appended.set(types)
    try:
        yield types
    finally:
        _appended.reset(token)


def note_appended(types: Iterable[str]) -> None:
    """Called by the event store after a successful append (a no-op outside ``recording_appends``)."""
    recording = _appended.get()
    if recording is not None:
        recording.extend(types)


_UNSAMPLED_CHILDREN_OFF = (
    "remoteParentNotSampled:AlwaysOffSampler",
    "localParentNotSampled:AlwaysOffSampler",
)
_skips: tuple[object, bool] | None = None


def _children_of_unsampled_dropped() -> bool:
    """Whether the process's sampler never records a child of an unsampled parent (parent-based with
    the SDK's defaults; a sampler like ``always_on`` would record it)."""
    global _skips  # noqa: PLW0603 - a cache of the process-global sampler's property
    sampler = process_sampler()
    if _skips is None or _skips[0] is not sampler:
        description = sampler.get_description()
        _skips = (sampler, all(part in description for part in _UNSAMPLED_CHILDREN_OFF))
    return _skips[1]


def _unsampled(span: trace.Span) -> bool:
    """``span`` is a valid, unsampled context whose children would not be recorded either."""
    ctx = span.get_span_context()
    return ctx.is_valid and not ctx.trace_flags.sampled and _children_of_unsampled_dropped()


def set_order_id(order_id: str | int, span: trace.Span | None = None) -> None:
    """Tag ``span`` (default: the current one, e.g. the HTTP server span) with ``order.id``; producer
    spans started later in this task inherit it."""
    (span or trace.get_current_span()).set_attribute("order.id", str(order_id))
    _order.set(str(order_id))


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
    """``send <template>`` PRODUCER span; inject its context into what you publish inside it (under an
    unsampled parent: that parent, see the module docstring)."""
    current = trace.get_current_span()
    if _unsampled(current):
        yield current
        return
    attrs = _messaging_attrs(subject, message_id, order_id if order_id is not None else _order.get())
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
    """``process <template>`` CONSUMER span, a child of the message's producer (one trace end to end;
    under an unsampled producer: the producer's context, see the module docstring)."""
    parent = extract_context(traceparent, tracestate)
    token = _order.set(str(order_id) if order_id is not None else None)
    try:
        remote = trace.get_current_span(parent)
        if _unsampled(remote):
            attached = otel_context.attach(parent)
            try:
                yield remote
            finally:
                otel_context.detach(attached)
            return
        attrs = _messaging_attrs(subject, message_id, order_id)
        attrs["messaging.operation.type"] = "process"
        attrs.update(attributes or {})
        with tracer().start_as_current_span(
            f"process {subject_template(subject)}", context=parent, kind=SpanKind.CONSUMER, attributes=attrs
        ) as span:
            yield span
    finally:
        _order.reset(token)


@contextlib.contextmanager
def batch_consumer_span(
    subject_filter: str, traceparents: Sequence[str | None], *, attributes: Mapping[str, Any] | None = None
) -> Iterator[trace.Span]:
    """``process <filter>`` CONSUMER span for a batch (projector, rebuild): a new trace whose links point
    at every message's producer span, as the conventions prescribe for batch receivers."""
    links: list[Link] = []
    for tp in traceparents:
        if len(links) >= MAX_LINKS:
            break
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
