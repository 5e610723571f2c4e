"""Messaging spans under an unsampled parent (app.telemetry.spans): with a parent-based sampler no span
is built — the producer's context itself flows on (same trace id and parent, flags 00) — while a sampled
parent, or a sampler that records children of unsampled parents, still gets real spans. Run in a child
process per sampler (the providers are process-global)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"

SCRIPT = """
import json, sys
from opentelemetry import trace
from app.telemetry import configure_telemetry, consumer_span, current_traceparent, producer_span
configure_telemetry("eda-test")
out = {}
for flags in ("00", "01"):
    parent = "00-TRACE_ID-PARENT-" + flags
    with consumer_span("cmd.payment.7", traceparent=parent, message_id="m", order_id=7) as span:
        inside = trace.get_current_span()
        with producer_span("events.payment.7", message_id="e", order_id=7) as sent:
            out[flags] = {
                "consumer_recording": span.is_recording(),
                "consumer_is_current": inside is span,
                "consumer_span_id": format(span.get_span_context().span_id, "016x"),
                "producer_recording": sent.is_recording(),
                "producer_span_id": format(sent.get_span_context().span_id, "016x"),
                "propagated": current_traceparent()[0],
            }
    out[flags]["after"] = trace.get_current_span().get_span_context().is_valid
print(json.dumps(out))
""".replace("TRACE_ID", TRACE_ID).replace("PARENT", PARENT)


def run(**env: str) -> dict[str, dict[str, object]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | env
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=environ, capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, dict[str, object]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_an_unsampled_parent_flows_on_without_spans_and_a_sampled_one_gets_them() -> None:
    for env in ({}, {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}):
        out = run(**env)
        unsampled, sampled = out["00"], out["01"]
        assert unsampled == {
            "consumer_recording": False,
            "consumer_is_current": True,
            "consumer_span_id": PARENT,  # no span of its own: the producer's context
            "producer_recording": False,
            "producer_span_id": PARENT,
            "propagated": f"00-{TRACE_ID}-{PARENT}-00",  # downstream stays in the trace, unsampled
            "after": False,  # detached again
        }, env
        assert sampled["consumer_recording"], env
        assert sampled["producer_recording"], env
        ids = {PARENT, sampled["consumer_span_id"], sampled["producer_span_id"]}
        assert len(ids) == 3, env  # a consumer span under the parent, a producer span under it
        assert sampled["propagated"] == f"00-{TRACE_ID}-{sampled['producer_span_id']}-01"


def test_a_sampler_that_records_children_of_unsampled_parents_still_gets_spans() -> None:
    unsampled = run(OTEL_TRACES_SAMPLER="always_on")["00"]
    assert unsampled["consumer_recording"]
    assert unsampled["producer_recording"]
    assert unsampled["consumer_span_id"] != PARENT
