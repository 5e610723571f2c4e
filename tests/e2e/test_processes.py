"""The seed flow against separate ``eda api`` and ``eda projector`` processes over real HTTP; the
projector's health server; clean shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import nats
import orjson
from idp_support import Tokens

from app.dev.process import free_port
from app.settings import Settings
from e2e.conftest import eda_process, role_env
from e2e.helpers import SEED
from tests.support.eventually import serving

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def _trace_id_of(settings: Settings, order_id: int) -> str | None:
    """The trace id in the ``traceparent`` of the order's first event, as stored in JetStream."""
    nc = await nats.connect(settings.nats_url)
    try:
        msg = await nc.jetstream().get_msg("EVENTS", subject=f"events.order.{order_id}", direct=False)
    finally:
        await nc.close()
    traceparent = orjson.loads(msg.data or b"{}").get("traceparent")
    return traceparent.split("-")[1] if traceparent else None


async def test_seed_flow_across_processes(settings: Settings, short_tmp: Path, tokens: Tokens) -> None:
    api_port, health_port = free_port(), free_port()
    env = role_env(settings, EDA_HEALTH_PORT=str(health_port))
    log = short_tmp / "roles.log"
    with (
        eda_process(["api", "--host", "127.0.0.1", "--port", str(api_port)], env, log) as api,
        eda_process(["projector"], env, log),
    ):
        base = f"http://127.0.0.1:{api_port}"
        async with httpx.AsyncClient(
            timeout=10, headers=tokens.header("backend", "orders:write:any orders:read:all")
        ) as client:
            await serving(client, f"{base}/readyz", timeout=30)
            created = await client.post(f"{base}/api/v1/orders", json=SEED)
            assert created.status_code == 201
            assert created.json() == {"order_id": 1, "status": "created", "version": 1}
            got = await client.get(f"{base}/api/v1/orders/1", params={"min_version": 1})
            assert got.status_code == 200
            assert got.json()["amount"] == 99.99
            assert got.headers["eda-consistency"] == "read-model"
            # No exporter in `eda api`: no server span, but the caller's W3C trace context still
            # becomes the parent of the append, so the event continues the caller's trace.
            traced = await client.post(
                f"{base}/api/v1/orders",
                json=SEED,
                headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
            )
            untraced = await client.post(f"{base}/api/v1/orders", json=SEED)
            assert await _trace_id_of(settings, traced.json()["order_id"]) == TRACE_ID
            assert await _trace_id_of(settings, untraced.json()["order_id"]) != TRACE_ID
            ready = await serving(client, f"http://127.0.0.1:{health_port}/readyz", timeout=30)
            assert ready.json()["checks"]["projector"]["ok"] is True
            assert (await client.get(f"http://127.0.0.1:{health_port}/livez")).status_code == 200
            assert "python_info" in (await client.get(f"http://127.0.0.1:{health_port}/metrics")).text
        api.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(api.wait, 15) == 0
    assert "Traceback" not in log.read_text(errors="replace")
