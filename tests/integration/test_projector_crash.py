"""Crash safety: ``eda projector`` in a separate process is SIGKILLed again and again while 5,000 order
events are appended; after a final restart the read model equals the fold of the events and no event
was applied twice (exactly one timeline row per event, per-order version = its event count)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from nats.aio.client import Client as NATS

from app.domain.order import ORDER
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import Metadata, RecordedEvent
from app.eventstore.jetstream import JetStreamEventStore
from app.readmodel import db
from app.readmodel.migrations import migrate
from app.readmodel.queries import get_order, record_from_events
from app.readmodel.sql import read_checkpoint
from app.service.handler import CommandHandler
from tests.support.orders import append_lifecycles

EDA = str(Path(sys.executable).parent / "eda")
ORDERS = 1250  # x 4 events = 5,000
T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
META = Metadata(correlation_id="crash-test")


async def test_projector_survives_sigkill_loop(
    nc: NATS, nats_url: str, readmodel_dsn: str, short_tmp: Path
) -> None:
    store = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    pg = await db.connect(readmodel_dsn)
    await migrate(pg, "readmodel")
    env = dict(os.environ) | {
        "EDA_NATS_URL": nats_url,
        "EDA_DATABASE_URL": readmodel_dsn,
        "EDA_HEALTH_PORT": "0",
        "EDA_LOG_LEVEL": "WARNING",
    }
    log = (short_tmp / "projector.log").open("ab")

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([EDA, "projector"], env=env, stdout=log, stderr=subprocess.STDOUT)

    done = asyncio.Event()
    appender = asyncio.create_task(
        append_lifecycles(CommandHandler(store, ORDER), ORDERS, done, jitter_s=0.01)
    )
    kills, progress = 0, []
    try:
        while not done.is_set() or kills < 5:
            proc = spawn()
            before = await read_checkpoint(pg, "readmodel")
            for _ in range(100):  # let it start and apply something, then kill it at a random moment
                if await read_checkpoint(pg, "readmodel") > before or (done.is_set() and kills >= 5):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(random.uniform(0, 0.3))
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
            kills += 1
            progress.append(await read_checkpoint(pg, "readmodel"))
        await appender
        final = spawn()
        try:
            last = await store.last_sequence()
            for _ in range(600):
                if await read_checkpoint(pg, "readmodel") == last:
                    break
                await asyncio.sleep(0.1)
            assert await read_checkpoint(pg, "readmodel") == last
        finally:
            final.terminate()
            await asyncio.to_thread(final.wait, 10)
        assert kills >= 5
        assert any(0 < p < last for p in progress), f"no kill landed mid-stream: {progress}"

        events = await store.read_all(1, limit=10_000)
        assert len(events) == ORDERS * 4
        by_order: dict[int, list[RecordedEvent]] = defaultdict(list)
        for event in events:
            by_order[int(event.envelope.aggregate_id)].append(event)
        timeline = await pg.fetch("SELECT order_id, version, sequence FROM readmodel.order_events")
        assert len(timeline) == len(events)  # one row per event: nothing applied twice, nothing lost
        assert sorted(r["sequence"] for r in timeline) == [e.sequence for e in events]
        mismatched = [
            oid
            for oid, evs in by_order.items()
            if await get_order(pg, "readmodel", oid) != record_from_events(evs)
        ]
        assert not mismatched, mismatched[:10]
        versions = await pg.fetch(
            "SELECT o.order_id FROM readmodel.orders o JOIN readmodel.order_events e USING (order_id) "
            "GROUP BY o.order_id, o.version HAVING o.version <> count(*)"
        )
        assert versions == []
    finally:
        appender.cancel()
        log.close()
        await pg.close()
        await store.close()
