"""PostgreSQL stopped immediately (``pg_ctl stop -m immediate``: no shutdown checkpoint, crash-like) twice
while ``eda projector`` (a separate process) projects 4,000 order events being appended: the projector
process survives and reconnects, never acknowledges a batch before its transaction committed (sampled:
the consumer's ack floor is never ahead of the checkpoint in PostgreSQL), and the read model converges
with no gaps (one timeline row per event, every order equal to the fold of its events)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from app.dev.postgres import Postgres
from app.domain.order import ORDER
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import RecordedEvent
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.readmodel import db
from app.readmodel.migrations import migrate
from app.readmodel.projector import DURABLE
from app.readmodel.queries import get_order, record_from_events
from app.service.handler import CommandHandler
from tests.support.chaos import record, stored_checkpoint
from tests.support.orders import append_lifecycles

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

EDA = str(Path(sys.executable).parent / "eda")
ORDERS = 1000  # x 4 events
DOWN_S = 3.0
SCHEMA = "readmodel"
MIN_SAMPLES = 25


@pytest.fixture
async def own_pg(short_tmp: Path) -> AsyncIterator[Postgres]:
    pg = Postgres(short_tmp / "pg")  # durable settings (fsync on): a crash must not lose a commit
    await pg.start()
    yield pg
    await pg.stop("immediate")


async def _watch_acks(
    nc: NATS, dsn: str, stop: asyncio.Event, violations: list[tuple[int, int]]
) -> tuple[int, int]:
    """Sample (ack floor, then checkpoint): an ack floor ahead of the checkpoint is an ack before commit
    (or a lost commit). Returns the samples taken before ``stop`` (while the projector worked) and in
    all: after ``stop`` it samples on up to ``MIN_SAMPLES`` (a fast run converges before the 50 ms
    cadence has taken many, and the rule holds at every moment, converged or not)."""
    js = nc.jetstream(timeout=2.0)
    samples = during = 0
    while not stop.is_set() or samples < MIN_SAMPLES:
        try:
            info = await js.consumer_info(STREAM, DURABLE)
            floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
        except Exception:
            floor = None
        checkpoint = await stored_checkpoint(dsn) if floor is not None else None
        if floor is not None and checkpoint is not None:
            samples += 1
            during += not stop.is_set()
            if floor > checkpoint:
                violations.append((floor, checkpoint))
        await asyncio.sleep(0.05)
    return during, samples


async def test_projector_rides_through_postgres_immediate_stops(
    nc: NATS, nats_url: str, own_pg: Postgres, short_tmp: Path
) -> None:
    dsn = own_pg.dsn
    store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    pg = await db.connect(dsn)
    await migrate(pg, SCHEMA)
    await pg.close()
    env = dict(os.environ) | {
        "EDA_NATS_URL": nats_url,
        "EDA_DATABASE_URL": dsn,
        "EDA_HEALTH_PORT": "0",
        "EDA_PROJECTOR_BATCH": "100",
    }
    log_path = short_tmp / "projector.log"
    log = log_path.open("ab")
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the event loop has work
        [EDA, "projector"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    done, stop_watch = asyncio.Event(), asyncio.Event()
    started = time.monotonic()
    appender = asyncio.create_task(append_lifecycles(CommandHandler(store, ORDER), ORDERS, done, wave=20))
    violations: list[tuple[int, int]] = []
    watcher = asyncio.create_task(_watch_acks(nc, dsn, stop_watch, violations))
    outages: list[dict[str, float]] = []
    try:
        for target in (800, 2400):  # stop PostgreSQL while batches are being applied
            while (await stored_checkpoint(dsn) or 0) < target:
                assert proc.poll() is None, "projector died"
                await asyncio.sleep(0.02)
            at = await stored_checkpoint(dsn) or 0
            t0 = time.monotonic()
            await own_pg.stop("immediate")
            await asyncio.sleep(DOWN_S)
            await own_pg.start()
            up = time.monotonic()
            while (await stored_checkpoint(dsn) or 0) <= at:  # the projector applies again
                assert time.monotonic() - up < 60, "projector did not resume after the restart"
                await asyncio.sleep(0.05)
            outages.append(
                {
                    "checkpoint_at_stop": at,
                    "down_s": up - t0,
                    "resumed_after_restart_s": time.monotonic() - up,
                }
            )
        await appender
        last = await store.last_sequence()
        while (await stored_checkpoint(dsn) or 0) < last:
            assert proc.poll() is None, "projector died"
            assert time.monotonic() - started < 240, "read model did not converge"
            await asyncio.sleep(0.1)
        converged_s = time.monotonic() - started
        stop_watch.set()
        during, samples = await watcher
        assert proc.poll() is None, "the projector process exited"
    finally:
        stop_watch.set()
        appender.cancel()
        watcher.cancel()
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
        log.close()

    pg = await db.connect(dsn)
    try:
        events = await store.read_all(1, limit=10_000)
        assert len(events) == ORDERS * 4
        by_order: dict[int, list[RecordedEvent]] = defaultdict(list)
        for event in events:
            by_order[int(event.envelope.aggregate_id)].append(event)
        timeline = await pg.fetch(f"SELECT sequence FROM {SCHEMA}.order_events ORDER BY sequence")
        dup = len(timeline) - len({r["sequence"] for r in timeline})
        missing = len({e.sequence for e in events} - {r["sequence"] for r in timeline})
        mismatched = [
            oid
            for oid, evs in by_order.items()
            if await get_order(pg, SCHEMA, oid) != record_from_events(evs)
        ]
    finally:
        await pg.close()
        await store.close()
    text = log_path.read_text(errors="replace")
    reconnects = text.count("projector cycle failed")
    isolated = text.count("isolating the poison event")
    parked = text.count("dead-lettered")
    figures = {
        "events": len(events),
        "pg_stops": len(outages),
        "outages": outages,
        "projector_cycles_failed_and_retried": reconnects,
        "batches_isolated_as_poison": isolated,
        "dead_lettered": parked,
        "ack_before_commit_violations": len(violations),
        "ack_floor_samples": samples,
        "ack_floor_samples_while_projecting": during,
        "timeline_rows": len(timeline),
        "duplicated": dup,
        "missing": missing,
        "orders_mismatched": len(mismatched),
        "converged_s": round(converged_s, 2),
    }
    record("pg-restart", figures)
    assert violations == []
    assert during > 0, "no ack floor was sampled while the projector worked"
    assert (dup, missing, mismatched) == (0, 0, [])
    assert len(timeline) == len(events)
    assert reconnects >= 2
    assert parked == 0  # a lost connection says nothing about the event: never dead-lettered
