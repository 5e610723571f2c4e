"""Admission of new orders by the saga's backlog (``app.api.admission``), on real NATS + PostgreSQL: with
the orchestrator away, orders pile up on its consumer; past ``EDA_ADMISSION_SAGA_BACKLOG`` a new order
is a ``503 saga-backlog`` problem with ``Retry-After`` (counted), while reads and cancels are served;
once the saga has caught up, orders are accepted again. An unreadable consumer admits."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import nats
from idp_support import Tokens
from prometheus_client.parser import text_string_to_metric_families

from app.api.admission import SagaBacklog
from app.runtime.background import saga_role
from app.settings import Settings
from tests.e2e.conftest import running_system
from tests.support.eventually import eventually

LIMIT = 20
SEED = {"user_id": 123, "amount": 99.99}


async def _rejections(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "eda_http_rejections_total" and s.labels.get("reason") == "saga_backlog"
    )


async def test_orders_are_refused_past_the_saga_backlog_and_admitted_once_it_catches_up(
    settings: Settings, tokens: Tokens
) -> None:
    settings = settings.model_copy(update={"admission_saga_backlog": LIMIT})
    async with running_system(settings, token=tokens.admin()) as system:
        client = system.client
        accepted: list[int] = []

        async def refused() -> bool:  # the orchestrator is not running: every order adds to its backlog
            response = await client.post("/api/v1/orders", json=SEED)
            if response.status_code == 201:
                accepted.append(response.json()["order_id"])
                return False
            assert response.status_code == 503, response.text
            problem = response.json()
            assert response.headers["content-type"].startswith("application/problem+json")
            assert problem["type"].endswith("/saga-backlog"), problem
            assert f"admission limit {LIMIT}" in problem["detail"]
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            return True

        await eventually(refused, timeout=20, interval=0.1, what="an order refused")
        assert len(accepted) > LIMIT  # nothing refused below the limit
        assert await _rejections(client) >= 1
        read = await client.get(f"/api/v1/orders/{accepted[0]}")
        assert read.status_code == 200, read.text
        cancel = await client.post(f"/api/v1/orders/{accepted[-1]}/cancel", json={"reason": "no longer"})
        assert cancel.status_code == 200, cancel.text

        saga = asyncio.create_task(saga_role(settings))
        try:

            async def admitted() -> bool:
                response = await client.post("/api/v1/orders", json=SEED)
                assert response.status_code in (201, 503), response.text
                return response.status_code == 201

            await eventually(admitted, timeout=30, interval=0.1, what="an order admitted again")
        finally:
            saga.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saga


async def test_a_backlog_that_cannot_be_read_admits(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        # a JetStream domain nobody serves: the consumer cannot be read (the shared server untouched)
        js = nc.jetstream(domain="nowhere", timeout=1.0)
        backlog = SagaBacklog(js, limit=1)
        await backlog.sample()
        assert backlog.pending is None
        backlog.admit()  # no exception: an unknown backlog is no reason to refuse
    finally:
        await nc.close()
