"""OTLP over gRPC, end to end: an ``eda api`` process configured only through the standard variables
(``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``) exports its spans to a real gRPC OTLP receiver — the HTTP
request's SERVER span and, as its child, the ``send`` PRODUCER span of the OrderCreated append."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from e2e.conftest import eda_process, role_env
from e2e.helpers import SEED

from app.dev.process import free_port
from app.settings import Settings
from telemetry.receiver import otlp_grpc_receiver
from tests.support.eventually import serving


async def test_spans_are_exported_over_grpc(
    nats_url: str, js_clean: None, readmodel_dsn: str, short_tmp: Path
) -> None:
    settings = Settings(nats_url=nats_url, database_url=readmodel_dsn, auth_mode="disabled")  # type: ignore[arg-type]
    port = free_port()
    async with otlp_grpc_receiver() as receiver:
        env = role_env(
            settings,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_METRICS_EXPORTER="none",
        )
        with eda_process(["api", "--host", "127.0.0.1", "--port", str(port)], env, short_tmp / "api.log"):
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(timeout=10) as client:
                await serving(client, f"{base}/livez")
                created = await client.post(f"{base}/api/v1/orders", json=SEED)
                assert created.status_code == 201
            for _ in range(100):
                server = [s for s in receiver.spans if s.kind == "SERVER" and s.name.startswith("POST")]
                send = [s for s in receiver.spans if s.name == "send events.order.{id}"]
                if server and send:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"no spans over gRPC: {receiver.spans}")
    assert server[0].service == "eda-api"
    assert send[0].kind == "PRODUCER"
    assert send[0].trace_id == server[0].trace_id
    assert send[0].parent_id == server[0].span_id
    assert send[0].attributes["order.id"] == str(created.json()["order_id"])
