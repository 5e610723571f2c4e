"""Metrics under load, scraped from the roles' ``/metrics`` (OpenTelemetry instruments bridged to
Prometheus): saga outcomes and step durations, worker command outcomes, and projection lag in events
and seconds while the read model's database is stalled, back to zero once it is released."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.support.eventually import eventually
from tests.telemetry.conftest import DECLINE_ABOVE, Traced

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


async def test_saga_outcomes_step_durations_and_worker_commands(traced: Traced) -> None:
    saga0, pay0 = await traced.metrics("saga"), await traced.metrics("payment")
    ok = [await traced.create(10.0 + i) for i in range(6)]
    declined = [await traced.create(DECLINE_ABOVE + 1.0 + i) for i in range(3)]
    for order_id in ok:
        await traced.status(order_id, {"completed"})
    for order_id in declined:
        await traced.status(order_id, {"cancelled"})

    async def counted() -> bool:
        saga = await traced.metrics("saga")
        done = value(saga, "eda_saga_outcomes_total", outcome="completed")
        cancelled = value(saga, "eda_saga_outcomes_total", outcome="cancelled")
        return (done, cancelled) == (
            value(saga0, "eda_saga_outcomes_total", outcome="completed") + 6,
            value(saga0, "eda_saga_outcomes_total", outcome="cancelled") + 3,
        )

    await eventually(counted, interval=0.2, what="the saga and worker metrics")
    saga = await traced.metrics("saga")
    failed = "eda_saga_step_duration_seconds_count"
    assert value(saga, failed, step="charge_payment", status="failed") == (
        value(saga0, failed, step="charge_payment", status="failed") + 3
    )
    assert value(saga, failed, step="charge_payment", status="succeeded") >= (
        value(saga0, failed, step="charge_payment", status="succeeded") + 6
    )
    assert value(saga, "eda_saga_step_duration_seconds_sum") > value(
        saga0, "eda_saga_step_duration_seconds_sum"
    )
    pay = await traced.metrics("payment")
    name = "eda_worker_commands_total"
    assert (
        value(pay, name, kind="charge", outcome="refused")
        == value(pay0, name, kind="charge", outcome="refused") + 3
    )
    assert value(pay, name, kind="charge", outcome="ok") == value(pay0, name, kind="charge", outcome="ok") + 6
    api = await traced.client.get(f"{traced.api}/metrics")
    assert "eda_events_appended_total" in api.text  # OTel metrics of the API process on its /metrics
    assert 'eda_commands_total{command="CreateOrder",outcome="ok"}' in api.text


async def test_projection_lag_grows_while_the_database_stalls_and_recovers(traced: Traced) -> None:
    async def lag() -> tuple[float, float]:
        m = await traced.metrics("projector")
        return (
            value(m, "eda_projection_lag_events", projection="orders"),
            value(m, "eda_projection_lag_seconds", projection="orders"),
        )

    async def caught_up() -> bool:
        return await lag() == (0.0, 0.0)

    await eventually(caught_up, interval=0.2, what="the projection metrics")
    conn = await asyncpg.connect(traced.dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("LOCK TABLE readmodel.orders IN ACCESS EXCLUSIVE MODE")  # the projector waits
        for i in range(20):
            await traced.create(5.0 + i)
        await asyncio.sleep(2.5)
        events, seconds = await lag()
        assert events >= 20, (events, seconds)
        assert seconds >= 1.5, (events, seconds)
        await tx.rollback()
    finally:
        await conn.close()
    await eventually(caught_up, interval=0.2, what="the projection metrics")
