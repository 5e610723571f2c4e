"""The real operator (kopf, in-process) against kmock's KubernetesEmulator with real NATS + PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from emulator import Emulator
from harness import LIVE, NS, operator
from nats.aio.client import Client as NATS
from pydantic import SecretStr
from seeding import checksum, folded_rows, live_rows, project_all, seed_orders

from app.domain.order import ORDER
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.readmodel.db import advisory_key
from app.service.repository import Repository
from app.settings import Settings
from tests.support.eventually import eventually

pytestmark = [pytest.mark.kmock(cls=Emulator)]
PRB = "/apis/eda.dev/v1alpha1/namespaces/default/projectionrebuilds"
SNAP = "/apis/eda.dev/v1alpha1/namespaces/default/snapshots"


@pytest.fixture
def settings(nats_url: str, readmodel_dsn: str) -> Settings:
    return Settings(nats_url=nats_url, database_url=SecretStr(readmodel_dsn), readmodel_schema=LIVE)


async def shadow_schemas(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'readmodel_%'")
    return [r["nspname"] for r in rows]


async def test_rebuild_20k_events_while_reads_continue(
    kmock: Any, settings: Settings, store: JetStreamEventStore, pool: asyncpg.Pool
) -> None:
    events = await seed_orders(store, 1, 5300)
    assert events >= 20_000
    async with pool.acquire() as conn:
        await project_all(conn, store, LIVE)
        before = await checksum(conn, LIVE)
        await conn.execute("UPDATE readmodel.orders SET status = 'paid', version = 99 WHERE order_id = 42")
    reads = {"ok": 0, "failed": 0}

    async def api_reads() -> None:  # what GET /api/v1/orders/{id} does against the live read model
        i = 0
        while True:
            i = i % 5300 + 1
            try:
                row = await pool.fetchrow(
                    "SELECT order_id, status FROM readmodel.orders WHERE order_id = $1", i
                )
                reads["ok" if row is not None else "failed"] += 1
            except asyncpg.PostgresError:
                reads["failed"] += 1
            await asyncio.sleep(0.002)

    reader = asyncio.create_task(api_reads())
    try:
        async with operator(kmock, settings) as kube:
            await kube.create(PRB, "ProjectionRebuild", "r1", {"projection": "orders", "batchSize": 1000})
            await eventually(
                lambda: kube.status("projectionrebuilds", "r1").get("phase") == "Succeeded", timeout=60
            )
            await eventually(lambda: ("Normal", "Succeeded") in kube.events())
            status = kube.status("projectionrebuilds", "r1")
    finally:
        reader.cancel()
    assert status["eventsReplayed"] == events
    assert status["orders"] == 5300
    assert status["percent"] == 100
    assert status["observedGeneration"] == 1
    assert kube.condition("projectionrebuilds", "r1", "Succeeded")["status"] == "True"
    assert kube.condition("projectionrebuilds", "r1", "Succeeded")["observedGeneration"] == 1
    assert kube.condition("projectionrebuilds", "r1", "Running")["status"] == "False"
    assert reads["ok"] > 0
    assert reads["failed"] == 0
    async with pool.acquire() as conn:
        assert await checksum(conn, LIVE) == before  # repaired, and equal to the model before
        assert await live_rows(conn, LIVE) == await folded_rows(store)
    assert await shadow_schemas(pool) == []


async def test_delete_mid_way_cancels_and_drops_the_shadow(
    kmock: Any, settings: Settings, store: JetStreamEventStore, pool: asyncpg.Pool
) -> None:
    await seed_orders(store, 1, 2000)
    async with pool.acquire() as conn:
        await project_all(conn, store, LIVE)
        before = await checksum(conn, LIVE)
    blocker = await pool.acquire()  # holds the live checkpoint table: the swap cannot happen
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE readmodel.projection_checkpoints IN SHARE MODE")
    try:
        async with operator(kmock, settings) as kube:
            await kube.create(PRB, "ProjectionRebuild", "r2", {"projection": "orders"})
            await eventually(
                lambda: kube.condition("projectionrebuilds", "r2", "Running").get("reason") == "Swapping"
            )
            assert len(await shadow_schemas(pool)) == 1
            await kube.delete(PRB, "r2")
            await eventually(lambda: kube.obj("projectionrebuilds", "r2").deleted)
            assert ("Warning", "Cancelled") in kube.events()
    finally:
        await tx.rollback()
        await pool.release(blocker)
    assert await shadow_schemas(pool) == []
    async with pool.acquire() as conn:
        assert await checksum(conn, LIVE) == before


async def test_second_rebuild_waits_with_a_condition(
    kmock: Any, settings: Settings, store: JetStreamEventStore, pool: asyncpg.Pool
) -> None:
    await seed_orders(store, 1, 100)
    holder = await pool.acquire()  # another rebuild of "orders" holds the lock
    await holder.execute("SELECT pg_advisory_lock($1)", advisory_key("eda.rebuild.orders"))
    try:
        async with operator(kmock, settings) as kube:
            await kube.create(PRB, "ProjectionRebuild", "r3", {"projection": "orders"})
            await eventually(
                lambda: kube.condition("projectionrebuilds", "r3", "Waiting").get("status") == "True"
            )
            assert kube.status("projectionrebuilds", "r3")["phase"] == "Waiting"
            assert kube.condition("projectionrebuilds", "r3", "Waiting")["reason"] == "AnotherRebuildRunning"
            await holder.execute("SELECT pg_advisory_unlock_all()")
            await eventually(lambda: kube.status("projectionrebuilds", "r3").get("phase") == "Succeeded")
            assert kube.condition("projectionrebuilds", "r3", "Waiting")["status"] == "False"
    finally:
        await pool.release(holder)


@pytest.mark.parametrize(
    "spec",
    [
        {"projection": "orders", "fromSequence": 10, "toSequence": 5},  # passes the CRD schema
        {"projection": "nope"},  # would be rejected by the schema; the emulator does not validate
        {"projection": "orders", "batchSize": "big"},
    ],
)
async def test_invalid_spec_fails_permanently(kmock: Any, settings: Settings, spec: dict[str, Any]) -> None:
    async with operator(kmock, settings) as kube:
        await kube.create(PRB, "ProjectionRebuild", "bad", spec)
        await eventually(lambda: kube.status("projectionrebuilds", "bad").get("phase") == "Failed")
        failed = kube.condition("projectionrebuilds", "bad", "Failed")
        assert (failed["status"], failed["reason"], failed["observedGeneration"]) == (
            "True",
            "InvalidSpec",
            1,
        )
        assert kube.condition("projectionrebuilds", "bad", "Succeeded")["status"] == "False"
        await eventually(lambda: ("Warning", "InvalidSpec") in kube.events())


async def test_nats_unavailable_is_reported_and_retried(kmock: Any, readmodel_dsn: str) -> None:
    dead = Settings(nats_url="nats://127.0.0.1:1", database_url=SecretStr(readmodel_dsn))
    async with operator(kmock, dead) as kube:
        await kube.create(PRB, "ProjectionRebuild", "r4", {"projection": "orders"})
        await eventually(
            lambda: kube.condition("projectionrebuilds", "r4", "Running").get("reason") == "NatsUnavailable"
        )
        assert kube.status("projectionrebuilds", "r4")["phase"] == "Pending"
        assert kube.condition("projectionrebuilds", "r4", "Succeeded")["status"] == "Unknown"


async def test_snapshot_once_then_on_a_schedule(
    kmock: Any, settings: Settings, nc: NATS, store: JetStreamEventStore, snapshots: SnapshotStore
) -> None:
    await seed_orders(store, 1, 20)
    repo = Repository(store, ORDER, snapshots)
    async with operator(kmock, settings) as kube:
        await kube.create(SNAP, "Snapshot", "once", {"aggregateType": "order", "retain": 2})
        await eventually(lambda: kube.status("snapshots", "once").get("phase") == "Succeeded")
        status = kube.status("snapshots", "once")
        assert (status["aggregatesScanned"], status["snapshotsWritten"]) == (20, 20)
        assert status.get("nextRunAt") is None
        assert kube.condition("snapshots", "once", "Succeeded")["status"] == "True"
        loaded = await repo.load(7)
        assert loaded.from_snapshot
        assert loaded.state == (await repo.load(7, use_snapshot=False)).state

        # a spec change (new generation) re-runs a one-shot Snapshot
        await seed_orders(store, 21, 5)
        await kube.patch(SNAP, "once", {"metadata": {"generation": 2}, "spec": {"ids": ["21", "22"]}})
        await eventually(lambda: kube.status("snapshots", "once").get("observedGeneration") == 2)
        assert kube.status("snapshots", "once")["snapshotsWritten"] == 2

        # every second (6th cron field = seconds): it re-runs, and new events get snapshotted
        await kube.create(SNAP, "Snapshot", "cron", {"aggregateType": "order", "schedule": "* * * * * */1"})

        # between two runs (it runs every second: a status read right after the first run may already
        # see the second one Running — seen in a fresh-clone run on a loaded host)
        def between_runs() -> dict[str, Any] | None:
            status: dict[str, Any] = kube.status("snapshots", "cron")
            return status if status.get("runs", 0) >= 1 and status.get("phase") == "Scheduled" else None

        first = await eventually(between_runs, what="the cron Snapshot scheduled after a run")
        assert first is not None
        assert first["nextRunAt"] >= first["lastRunAt"]
        await seed_orders(store, 100, 3)
        await eventually(lambda: kube.status("snapshots", "cron").get("runs", 0) >= first["runs"] + 2)
        assert (await repo.load(101)).from_snapshot

        await kube.create(SNAP, "Snapshot", "badcron", {"aggregateType": "order", "schedule": "every day"})
        await eventually(
            lambda: kube.condition("snapshots", "badcron", "Failed").get("reason") == "InvalidSpec"
        )


async def test_runs_are_recorded_for_the_console(
    kmock: Any, settings: Settings, store: JetStreamEventStore, pool: asyncpg.Pool
) -> None:
    events = await seed_orders(store, 1, 300)
    async with operator(kmock, settings) as kube:
        await kube.create(PRB, "ProjectionRebuild", "r5", {"projection": "orders", "batchSize": 100})
        await kube.create(SNAP, "Snapshot", "s5", {"aggregateType": "order"})
        await eventually(lambda: kube.status("projectionrebuilds", "r5").get("phase") == "Succeeded")
        await eventually(lambda: kube.status("snapshots", "s5").get("phase") == "Succeeded")
        uid = kube.obj("projectionrebuilds", "r5")["metadata"]["uid"]
    rows = {r["kind"]: dict(r) for r in await pool.fetch("SELECT * FROM eda.maintenance_runs")}
    assert set(rows) == {"rebuild", "snapshot"}
    rebuild = rows["rebuild"]
    assert rebuild["id"] == f"operator-rebuild-{uid.replace('-', '')[:12].lower()}"
    assert (rebuild["source"], rebuild["k8s_namespace"], rebuild["k8s_name"]) == ("operator", NS, "r5")
    assert (rebuild["target"], rebuild["status"], rebuild["phase"]) == ("orders", "succeeded", "Succeeded")
    assert rebuild["finished_at"] is not None
    assert rebuild["progress"]["percent"] == 100
    assert rebuild["progress"]["events_replayed"] == events
    assert rebuild["message"].startswith("rebuilt 300 orders")
    snap = rows["snapshot"]
    assert (snap["source"], snap["k8s_namespace"], snap["k8s_name"]) == ("operator", NS, "s5")
    assert (snap["target"], snap["status"]) == ("order", "succeeded")
    assert snap["progress"]["scanned"] == snap["progress"]["written"] == 300
    assert snap["progress"]["percent"] == 100
