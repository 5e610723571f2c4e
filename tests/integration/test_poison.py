"""Poison events: an event the projector cannot apply is retried ``max_deliver`` times with backoff, then
parked in the ``DLQ`` stream; the projection goes on past it. Visible as ``eda_dead_letters_total`` and
through ``GET /api/v1/admin/dead-letters``. Runs the real runtime wiring (``projector_role``) and API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import nats
import orjson
import pytest
from prometheus_client import REGISTRY

from app.api.main import create_app
from app.readmodel.deadletter import DLQ_STREAM, RetryPolicy
from app.readmodel.projector import DURABLE
from app.runtime.roles import projector_role
from app.settings import Settings
from app.telemetry import configure_telemetry
from tests.support.eventually import eventually

CHECKPOINT = "SELECT sequence FROM readmodel.projection_checkpoints WHERE projection = 'orders'"
ORDER = {"user_id": 7, "items": [{"product_id": 1, "quantity": 2}], "amount": 10.0}


def test_retry_policy_backoff() -> None:
    policy = RetryPolicy.parse(4, "0.1, 0.5,2")
    assert policy == RetryPolicy(4, (0.1, 0.5, 2.0))
    assert [policy.delay(a) for a in (1, 2, 3, 4, 9)] == [0.1, 0.5, 2.0, 2.0, 2.0]


@contextlib.asynccontextmanager
async def system(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        task = asyncio.create_task(projector_role(settings, health=False))
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def dead_letter_count() -> float:
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == "eda_dead_letters_total" and s.labels.get("consumer") == DURABLE
    )


async def test_poison_events_are_dead_lettered_and_projection_continues(
    nats_url: str, js_clean: None, readmodel_dsn: str
) -> None:
    configure_telemetry("eda-test", asyncpg=False)  # once per process: bridges OTel metrics to Prometheus
    settings = Settings(
        nats_url=nats_url,
        database_url=readmodel_dsn,  # type: ignore[arg-type]
        projector_max_deliver=3,
        projector_backoff="0.05,0.2",
        projector_batch=50,
        auth_mode="disabled",  # poison events are the subject here, not tokens
        default_price="5.00",
    )
    before = dead_letter_count()
    nc = await nats.connect(nats_url)
    try:
        async with system(settings) as api:
            for _ in range(3):
                assert (await api.post("/api/v1/orders", json=ORDER)).status_code == 201
            js = nc.jetstream()
            good = await js.get_msg("EVENTS", subject="events.order.3", direct=False)
            # poison 1: not JSON at all (undecodable)
            bad1 = await js.publish("events.order.1001", b"\xff{not json", headers={"Nats-Msg-Id": "bad-1"})
            # poison 2: decodes, but the projection's INSERT fails (numeric(20,2) overflow in PostgreSQL)
            env = orjson.loads(good.data or b"")
            env.update(event_id="01970000-0000-7000-8000-000000000bad", aggregate_id="1002")
            env["data"].update(order_id=1002, amount="1e30")
            bad2 = await js.publish(
                "events.order.1002", orjson.dumps(env), headers={"Nats-Msg-Id": "bad-2", "Eda-Type": "X"}
            )
            started = time.monotonic()
            for _ in range(3):  # after the poison: must still be projected
                assert (await api.post("/api/v1/orders", json=ORDER)).status_code == 201
            last = (await js.stream_info("EVENTS")).state.last_seq
            pg = await asyncpg.connect(readmodel_dsn)
            try:

                async def past_the_poison() -> bool:
                    return bool((await pg.fetchval(CHECKPOINT) or 0) >= last)

                await eventually(past_the_poison, timeout=20, what="the projection past the poison events")
                converged_s = time.monotonic() - started
                checkpoint = await pg.fetchval(CHECKPOINT)
                ids = [
                    r["order_id"] for r in await pg.fetch("SELECT order_id FROM readmodel.orders ORDER BY 1")
                ]
            finally:
                await pg.close()
            assert checkpoint == last
            assert ids == [1, 2, 3, 4, 5, 6]

            dlq = await js.stream_info(DLQ_STREAM)
            assert dlq.state.messages == 2
            parked = {}
            for seq in (1, 2):
                m = await js.get_msg(DLQ_STREAM, seq=seq)
                parked[m.subject] = m
            assert set(parked) == {f"dlq.{DURABLE}.{bad1.seq}", f"dlq.{DURABLE}.{bad2.seq}"}
            m2 = parked[f"dlq.{DURABLE}.{bad2.seq}"]
            headers = m2.headers or {}
            assert headers["Eda-Deliveries"] == "3"
            assert headers["Eda-Original-Subject"] == "events.order.1002"
            assert headers["Eda-Original-Msg-Id"] == "bad-2"
            assert headers["Eda-Type"] == "X"  # the original headers travel along
            assert "NumericValueOutOfRange" in headers["Eda-Error"]
            assert m2.data == orjson.dumps(env)
            assert "Eda-Error" in (parked[f"dlq.{DURABLE}.{bad1.seq}"].headers or {})

            r = await api.get("/api/v1/admin/dead-letters")
            assert r.status_code == 200
            body = r.json()
            assert body["count"] == 2
            assert [i["sequence"] for i in body["items"]] == [bad2.seq, bad1.seq]  # newest first
            assert body["items"][1]["error"].startswith(("DecodeError", "ValidationError", "JSONDecodeError"))
            assert (await api.get("/api/v1/admin/dead-letters?limit=0")).status_code == 422
            assert dead_letter_count() - before == 2
            metrics = (await api.get("/metrics")).text
            assert 'eda_dead_letters_total{consumer="projector-orders"' in metrics
            print(
                f"\nPOISON: 2 events parked after 3 attempts each; projection past them in {converged_s:.2f}s"
            )
    finally:
        await nc.close()


@pytest.mark.parametrize("exc_name", ["ConnectionDoesNotExistError", "OSError"])
def test_connection_failures_are_transient(exc_name: str) -> None:
    from app.readmodel.deadletter import transient

    exc = getattr(asyncpg.exceptions, exc_name, None) or OSError
    assert transient(exc("gone"))
    assert not transient(asyncpg.exceptions.NumericValueOutOfRangeError("overflow"))
    assert not transient(ValueError("bad"))
