"""Run records (``eda.maintenance_runs``): the rebuild engine wrapped by ``RunRecorder`` against real NATS +
PostgreSQL leaves a row whose progress grows and ends ``succeeded``; writes are rate-bounded; a run left
``running`` without updates shows as stalled; a failed CLI-style run is recorded as failed."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest

from app.eventstore.jetstream import JetStreamEventStore
from app.readmodel import db, runs
from app.readmodel.rebuild import Progress, Rebuild, RebuildRequest
from tests.operator.seeding import project_all, seed_orders

LIVE = "readmodel"


async def row(pool: asyncpg.Pool, run_id: str) -> dict[str, Any]:
    record = await pool.fetchrow("SELECT * FROM eda.maintenance_runs WHERE id = $1", run_id)
    assert record is not None
    return dict(record)


async def test_rebuild_records_growing_progress_and_its_end(
    store: JetStreamEventStore, pool: asyncpg.Pool
) -> None:
    events = await seed_orders(store, 1, 1000)
    async with pool.acquire() as conn:
        await project_all(conn, store, LIVE)
    run_id = "test-rebuild-1"
    await runs.record_start(pool, run_id, "rebuild", "orders", runs.RunSource("cli"))
    started = await row(pool, run_id)
    assert (started["status"], started["phase"], started["finished_at"]) == ("running", "Pending", None)

    def slow(p: Progress) -> None:  # the engine reports at most every 0.2 s: make each batch visible
        if p.phase == "Running":
            time.sleep(0.25)

    seen: list[tuple[str, int]] = []

    async def watch() -> None:
        while True:
            r = await row(pool, run_id)
            if r["progress"]:
                seen.append((r["phase"], int(r["progress"]["percent"])))
            await asyncio.sleep(0.02)

    recorder = runs.RunRecorder(pool, run_id, interval=0.05)
    watcher = asyncio.create_task(watch())
    try:
        async with recorder.writing():
            request = RebuildRequest(batch_size=250)
            result = await Rebuild(store, pool, request, recorder.rebuild_progress(slow)).run()
    finally:
        watcher.cancel()
    await runs.record_finish(pool, run_id, "succeeded", progress=recorder.latest[1], message="done")

    percents = [p for phase, p in seen if phase == "Running"]
    assert len(set(percents)) >= 3, seen  # several distinct progress values were recorded ...
    assert percents == sorted(percents)  # ... and progress never went backwards
    assert percents[0] < 100
    done = await row(pool, run_id)
    assert (done["status"], done["phase"], done["message"]) == ("succeeded", "Succeeded", "done")
    assert done["finished_at"] is not None
    assert done["finished_at"] >= done["started_at"]
    assert done["progress"]["percent"] == 100
    assert done["progress"]["events_replayed"] == result.events_replayed == events
    assert done["progress"]["orders"] == 1000
    listed = await runs.list_runs(pool)
    assert listed["running"] == []
    assert [r["id"] for r in listed["finished"]] == [run_id]
    assert listed["finished"][0]["source"] == "cli"


async def test_writes_are_rate_bounded(pool: asyncpg.Pool) -> None:
    await runs.record_start(pool, "burst", "snapshot", "order", runs.RunSource("cli"))
    recorder = runs.RunRecorder(pool, "burst")  # default: at most one write per second

    class Counts:
        scanned = written = skipped = 0

    counts = Counts()
    report = recorder.snapshot_progress()
    began = time.monotonic()
    async with recorder.writing():
        for i in range(1, 501):
            counts.scanned = counts.written = i
            report(counts, 500)
            await asyncio.sleep(0.003)  # 500 reports over ~1.5 s
        await asyncio.sleep(1.1)  # the trailing report is written within the interval
    elapsed = time.monotonic() - began
    assert 1 <= recorder.writes <= int(elapsed) + 1, (recorder.writes, elapsed)  # 500 reports, <= 1 write/s
    r = await row(pool, "burst")
    assert r["progress"] == {"scanned": 500, "written": 500, "skipped": 0, "candidates": 500, "percent": 100}


async def test_a_run_left_running_shows_as_stalled(pool: asyncpg.Pool) -> None:
    await runs.record_start(pool, "crashed", "rebuild", "orders", runs.RunSource("operator", "ns", "prb"))
    await runs.record_start(pool, "alive", "rebuild", "orders", runs.RunSource("cli"))
    await pool.execute(
        "UPDATE eda.maintenance_runs SET updated_at = now() - interval '5 minutes' WHERE id = 'crashed'"
    )
    listed = await runs.list_runs(pool)
    status = {r["id"]: r["status"] for r in listed["running"]}
    assert status == {"crashed": "stalled", "alive": "running"}
    crashed = next(r for r in listed["running"] if r["id"] == "crashed")
    assert (crashed["source"], crashed["k8s_namespace"], crashed["k8s_name"]) == ("operator", "ns", "prb")


async def test_recording_never_fails_the_run(fresh_db: str) -> None:
    p = await db.create_pool(fresh_db, size=2)  # not migrated: no eda.maintenance_runs table
    try:
        await runs.record_start(p, "x", "rebuild", "orders", runs.RunSource("cli"))
        await runs.record_progress(p, "x", "Running", {"percent": 5})
        await runs.record_finish(p, "x", "failed", message="boom")
    finally:
        await p.close()


async def test_privileges_api_reads_projector_nothing(pool: asyncpg.Pool, fresh_db: str) -> None:
    await runs.record_start(pool, "r", "rebuild", "orders", runs.RunSource("cli"))
    owner = await pool.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'maintenance_runs'")
    assert owner == "eda_migrator"
    suffix = uuid.uuid4().hex[:8]
    users = {"api": f"api_{suffix}", "projector": f"projector_{suffix}"}
    for group, user in users.items():
        await pool.execute(f'CREATE ROLE "{user}" LOGIN IN ROLE eda_{group}')
    try:
        api = await asyncpg.connect(fresh_db.replace("postgres@", f"{users['api']}@"))
        try:
            assert await api.fetchval("SELECT count(*) FROM eda.maintenance_runs") == 1
            for statement in (
                "UPDATE eda.maintenance_runs SET status = 'failed'",
                "DELETE FROM eda.maintenance_runs",
                "INSERT INTO eda.maintenance_runs (id, kind, target, source, status, phase) "
                "VALUES ('x', 'rebuild', 'orders', 'cli', 'running', 'Pending')",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await api.execute(statement)
        finally:
            await api.close()
        projector = await asyncpg.connect(fresh_db.replace("postgres@", f"{users['projector']}@"))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await projector.fetchval("SELECT count(*) FROM eda.maintenance_runs")
        finally:
            await projector.close()
    finally:
        for user in users.values():
            await pool.execute(f'DROP OWNED BY "{user}"')
            await pool.execute(f'DROP ROLE "{user}"')
