"""Real OTLP receivers for tests: OTLP/HTTP (``POST /v1/traces``, protobuf ``ExportTraceServiceRequest``;
``/v1/metrics``: which service exported which metric; other OTLP paths are accepted and ignored) and
OTLP/gRPC (the ``TraceService/Export`` method, served by
grpcio with the service definition from ``opentelemetry-proto``). Spans are kept as flat ``Span``
records; ``render_tree`` draws a trace as ASCII (used for docs/observability.md)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from app.dev.process import free_port

KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS_ERROR = 2


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    service: str
    start: int
    end: int
    status: int
    status_message: str
    attributes: dict[str, Any]
    links: list[str] = field(default_factory=list)


@dataclass
class Receiver:
    url: str
    spans: list[Span] = field(default_factory=list)
    metrics: set[tuple[str, str]] = field(default_factory=set)  # (service.name, metric name) received

    def trace(self, trace_id: str) -> list[Span]:
        return sorted((s for s in self.spans if s.trace_id == trace_id), key=lambda s: s.start)


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return spans_of(request)


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    out: list[Span] = []
    for rs in request.resource_spans:
        resource = {a.key: _value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    Span(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        name=s.name,
                        kind=KINDS.get(s.kind, str(s.kind)),
                        service=str(resource.get("service.name", "")),
                        start=s.start_time_unix_nano,
                        end=s.end_time_unix_nano,
                        status=s.status.code,
                        status_message=s.status.message,
                        attributes={a.key: _value(a.value) for a in s.attributes},
                        links=[link.span_id.hex() for link in s.links],
                    )
                )
    return out


@contextlib.asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    """Serve on a free loopback port; ``receiver.url`` is the ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
    port = free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}")

    async def traces(request: web.Request) -> web.Response:
        receiver.spans.extend(decode(await request.read()))
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    async def metrics(request: web.Request) -> web.Response:
        exported = ExportMetricsServiceRequest()
        exported.ParseFromString(await request.read())
        for rm in exported.resource_metrics:
            resource = {a.key: _value(a.value) for a in rm.resource.attributes}
            service = str(resource.get("service.name", ""))
            receiver.metrics.update((service, m.name) for sm in rm.scope_metrics for m in sm.metrics)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def other(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/metrics", metrics)
    app.router.add_post("/{tail:.*}", other)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def otlp_grpc_receiver() -> AsyncIterator[Receiver]:
    """OTLP/gRPC on a free loopback port (plaintext); ``receiver.url`` is the endpoint."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    port = free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}")

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(
            self, request: ExportTraceServiceRequest, context: Any
        ) -> ExportTraceServiceResponse:
            receiver.spans.extend(spans_of(request))
            return ExportTraceServiceResponse()

    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield receiver
    finally:
        await server.stop(grace=1)


def render_tree(spans: list[Span]) -> str:
    """The trace as an indented tree: offset and duration (ms), kind, name, service, key attributes."""
    by_parent: dict[str, list[Span]] = {}
    ids = {s.span_id for s in spans}
    for s in spans:
        by_parent.setdefault(s.parent_id if s.parent_id in ids else "", []).append(s)
    t0 = min(s.start for s in spans)
    lines: list[str] = []

    def walk(span: Span, prefix: str, last: bool, root: bool) -> None:
        extra = []
        for key in ("order.id", "eda.event.types", "eda.command.kind", "eda.saga.decision"):
            if key in span.attributes:
                value = span.attributes[key]
                extra.append(f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}")
        if span.status == STATUS_ERROR:
            extra.append(f"ERROR({span.status_message})")
        timing = f"{(span.start - t0) / 1e6:7.1f} +{(span.end - span.start) / 1e6:6.1f} ms"
        branch = "" if root else ("└─ " if last else "├─ ")
        lines.append(f"{timing}  {prefix}{branch}{span.name} [{span.kind}, {span.service}] {' '.join(extra)}")
        children = sorted(by_parent.get(span.span_id, []), key=lambda s: s.start)
        child_prefix = prefix if root else prefix + ("   " if last else "│  ")
        for i, child in enumerate(children):
            walk(child, child_prefix, i == len(children) - 1, False)

    for root in sorted(by_parent.get("", []), key=lambda s: s.start):
        walk(root, "", True, True)
    return "\n".join(lines)
