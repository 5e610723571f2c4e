"""``eda dev`` (every role in one process) with the chart's production sampler,
``parentbased_traceidratio`` at 0.1, exporting OTLP/HTTP to a real receiver:

- each role reports under its own ``service.name`` (``eda-api``, ``eda-saga``, ``eda-worker-payment``...),
  spans and OTLP metrics alike, and ``/metrics`` stays one valid family per metric name;
- a caller's SAMPLED ``traceparent`` is honoured although the ratio alone would drop its trace id: the
  whole saga is one trace; an unsampled one leaves no span at all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest

from app.dev.process import free_port, terminate
from tests.e2e.conftest import EDA
from tests.telemetry.receiver import Receiver, Span, otlp_receiver

# ratio 0.1 samples a trace id whose low 64 bits are below 0.1 * 2**64: all-ones never is
UNSAMPLED_BY_RATIO = "0af7651916cd43dd{:016x}"
CALLER_SPAN = "b7ad6b7169203331"
ROLES = {"eda-api", "eda-saga", "eda-worker-inventory", "eda-worker-payment", "eda-worker-shipping"}


@pytest.fixture(scope="module")
async def dev(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, Receiver]]:
    data = tmp_path_factory.mktemp("dev")
    os.chmod(data, 0o711)  # reachable by the postgres system user when run as root
    port = free_port()
    async with otlp_receiver() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "EDA_LOG_LEVEL": "WARNING",
        }
        with (data / "dev.log").open("ab") as log:
            proc = subprocess.Popen(  # noqa: ASYNC220
                [EDA, "dev", "--data-dir", str(data), "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                for _ in range(600):
                    assert proc.poll() is None, (data / "dev.log").read_text()[-3000:]
                    try:
                        if (await client.get(f"{base}/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            yield base, receiver
        finally:
            await terminate(proc, signal.SIGINT)


async def _order(base: str, traceparent: str) -> int:
    """Create an order with the caller's ``traceparent``; returns its id once the saga completed."""
    async with httpx.AsyncClient(timeout=10) as client:
        body = {"user_id": 5, "items": [{"product_id": 1, "quantity": 2}], "amount": 199.98}
        resp = await client.post(f"{base}/api/v1/orders", json=body, headers={"traceparent": traceparent})
        assert resp.status_code == 201, resp.text
        order_id = int(resp.json()["order_id"])
        for _ in range(200):
            saga = await client.get(f"{base}/api/v1/orders/{order_id}/saga")
            done = saga.status_code == 200 and saga.json()["state"] == "completed"
            if done and all(s["status"] != "running" for s in saga.json()["steps"]):
                return order_id
            await asyncio.sleep(0.1)
    raise AssertionError(f"order {order_id} did not complete")


def _of_order(receiver: Receiver, order_id: int) -> list[Span]:
    return [
        s
        for s in receiver.spans
        if s.attributes.get("order.id") == str(order_id) and s.kind in ("PRODUCER", "CONSUMER")
    ]


async def test_sampled_caller_makes_one_trace_per_saga_under_each_roles_name(
    dev: tuple[str, Receiver],
) -> None:
    base, receiver = dev
    trace_id = UNSAMPLED_BY_RATIO.format(2**64 - 1)
    order_id = await _order(base, f"00-{trace_id}-{CALLER_SPAN}-01")
    for _ in range(50):  # every role exports every 200 ms
        if {s.service for s in receiver.trace(trace_id)} >= ROLES:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    spans = receiver.trace(trace_id)
    assert {s.service for s in spans} >= ROLES, sorted({s.service for s in spans})
    assert "eda-dev" not in {s.service for s in spans}
    server = [s for s in spans if s.kind == "SERVER" and s.name == "POST /api/v1/orders"]
    assert [(s.service, s.parent_id) for s in server] == [("eda-api", CALLER_SPAN)]
    messaging = _of_order(receiver, order_id)
    assert {s.trace_id for s in messaging} == {trace_id}  # one trace for the whole saga
    consumers = {(s.service, s.name.split(".")[0]) for s in messaging if s.kind == "CONSUMER"}
    workers = {service for service, name in consumers if service.startswith("eda-worker-")}
    assert workers == {"eda-worker-inventory", "eda-worker-payment", "eda-worker-shipping"}
    events = {s.service for s in messaging if s.kind == "CONSUMER" and s.name.startswith("process events.")}
    assert events == {"eda-saga", "eda-worker-shipping"}  # the shipping worker acts on OrderPaid


async def test_unsampled_caller_leaves_no_span(dev: tuple[str, Receiver]) -> None:
    base, receiver = dev
    trace_id = UNSAMPLED_BY_RATIO.format(2**64 - 2)
    order_id = await _order(base, f"00-{trace_id}-{CALLER_SPAN}-00")
    await asyncio.sleep(1.0)  # two export periods
    assert receiver.trace(trace_id) == []
    assert _of_order(receiver, order_id) == []


async def test_metrics_per_role_over_otlp_and_one_family_per_name_on_metrics(
    dev: tuple[str, Receiver],
) -> None:
    base, receiver = dev
    await _order(base, f"00-{UNSAMPLED_BY_RATIO.format(2**64 - 3)}-{CALLER_SPAN}-00")
    expected = {
        ("eda-api", "eda.events.appended"),
        ("eda-saga", "eda.saga.outcomes"),
        ("eda-saga", "eda.events.appended"),
        ("eda-worker-payment", "eda.worker.commands"),
        ("eda-worker-shipping", "eda.worker.commands"),
        ("eda-projector", "eda.projection.lag.events"),
    }
    for _ in range(50):
        if expected <= receiver.metrics:
            break
        await asyncio.sleep(0.1)
    assert expected <= receiver.metrics, sorted(receiver.metrics)
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{base}/metrics")).text
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), sorted(t for t in types if types.count(t) > 1)
    appended = [line for line in text.splitlines() if line.startswith("eda_events_appended_total{")]
    assert any('service_name="eda-api"' in line for line in appended), appended
    assert any('service_name="eda-saga"' in line for line in appended), appended
