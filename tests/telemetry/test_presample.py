"""``sample_first``: the FastAPI instrumentation serves only the requests the sampler records. With a
ratio sampler (0.5 here), every root request is either fully traced — a server span and, inside it, the
route's own span, same trace id — or leaves no span at all while its trace id still flows; a caller's
sampled ``traceparent`` is always traced, an unsampled one never. Own TracerProvider with an in-memory
exporter, so the process's global telemetry is not involved."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.telemetry.instrument import sample_first
from app.telemetry.presample import PresetTraceIds

CALLER = "b7ad6b7169203331"


class Counting(sampling.ParentBasedTraceIdRatio):
    """The ratio sampler, counting the server spans the SDK (i.e. the instrumentation) asks about."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)  # type: ignore[no-untyped-call]
        self.instrumented = 0

    def should_sample(self, *args: Any, **kwargs: Any) -> sampling.SamplingResult:
        kind = kwargs.get("kind", args[3] if len(args) > 3 else None)
        name = kwargs.get("name", args[2] if len(args) > 2 else "")
        if kind == trace.SpanKind.SERVER and name != "HTTP server":  # not SampleFirst's own question
            self.instrumented += 1
        return super().should_sample(*args, **kwargs)


SAMPLER = Counting(0.5)


async def test_only_sampled_requests_pay_for_the_instrumentation_and_decisions_hold() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=SAMPLER, id_generator=PresetTraceIds())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    # FastAPI's native telemetry off, as in app/api/main.py: its spans come from the global provider
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})
    seen: list[tuple[int, bool]] = []  # (trace id in the handler, recording)

    @app.post("/work")
    async def work() -> dict[str, int]:
        parent = trace.get_current_span().get_span_context()
        with tracer.start_as_current_span("inner") as span:  # like an append's producer span
            seen.append((span.get_span_context().trace_id, span.is_recording()))
            assert span.get_span_context().trace_id == parent.trace_id  # the request's trace continues
        return {"ok": 1}

    sample_first(app, SAMPLER, "/livez", tracer_provider=provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(200):
            assert (await client.post("/work")).status_code == 200
        sampled_caller = f"00-{'ab' * 16}-{CALLER}-01"
        unsampled_caller = f"00-{'cd' * 16}-{CALLER}-00"
        assert (await client.post("/work", headers={"traceparent": sampled_caller})).status_code == 200
        assert (await client.post("/work", headers={"traceparent": unsampled_caller})).status_code == 200

    spans = exporter.get_finished_spans()
    servers = {s.context.trace_id: s for s in spans if s.kind == trace.SpanKind.SERVER}
    roots, callers = seen[:200], seen[200:]
    recorded = [tid for tid, recording in roots if recording]
    assert 50 < len(recorded) < 150  # ratio 0.5 of 200
    for tid, recording in roots:
        # a recorded inner span always has its server span; an unrecorded one has none: no half traces
        assert (tid in servers) == recording
        assert SAMPLER.should_sample(None, tid, "x").decision.is_sampled() == recording  # type: ignore[no-untyped-call]
    assert len({tid for tid, _ in roots}) == 200  # every request its own trace id, recorded or not
    assert callers == [(int("ab" * 16, 16), True), (int("cd" * 16, 16), False)]
    assert format(servers[int("ab" * 16, 16)].parent.span_id, "016x") == CALLER
    assert len(servers) == len(recorded) + 1
    # the instrumentation ran only for the recorded requests (and the sampled caller's)
    assert SAMPLER.instrumented == len(recorded) + 1
