"""Shared by the backup tests: fill a system with every part a backup holds, and read streams back."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig
from rich.console import Console

from app.api.ids import OrderIds
from app.dev.nats import NatsServer
from app.dev.process import free_port
from app.eventstore.directget import RawMessage
from app.eventstore.jetstream import JetStreamEventStore, ensure_stream
from app.eventstore.snapshots import SnapshotStore
from app.saga.timeouts import timers_stream_config
from app.workers.commands import commands_stream_config
from tests.operator.seeding import seed_orders


async def fill(nc: NATS, store: JetStreamEventStore, dsn: str, orders: int) -> dict[str, Any]:
    """Orders 1..``orders`` (events), the counter at ``orders``, a snapshot, a pending timer, a queued
    command, a durable consumer halfway, and two idempotency keys (one of an order that exists)."""
    js = nc.jetstream()
    events = await seed_orders(store, 1, orders)
    ids = await OrderIds.open(nc)
    allocated = [await ids.next() for _ in range(orders)]
    snapshots = await SnapshotStore.open(js)
    await snapshots.kv.put("order.1", b'{"snapshot": 1}')
    await ensure_stream(js, timers_stream_config(1))
    at = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    schedule = {"Nats-Schedule": f"@at {at}", "Nats-Schedule-Target": "timeouts.saga.3.due"}
    await js.publish("sched.saga.3.timer", b"", headers=schedule)
    await ensure_stream(js, commands_stream_config(1))
    await js.publish("cmd.payment.3", b'{"kind": "charge"}', headers={"Nats-Msg-Id": "c-3"})
    await js.add_consumer("EVENTS", ConsumerConfig(durable_name="halfway", ack_policy=AckPolicy.ALL))
    sub = await js.pull_subscribe_bind("halfway", "EVENTS")
    msgs = await sub.fetch(events // 2)
    await msgs[-1].ack_sync()
    await sub.unsubscribe()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO eda.idempotency_keys (key, fingerprint, state, order_id, response_status, "
            "response_body, response_headers, completed_at) VALUES ($1, 'f', 'completed', $2, 201, $3, "
            '\'{"location": "x"}\'::jsonb, now())',
            [("key-of-order-2", 2, b'{"order_id":2}'), ("key-after-cut", orders + 50, b'{"order_id":0}')],
        )
    finally:
        await conn.close()
    return {"events": events, "allocated": allocated, "halfway": msgs[-1].metadata.sequence.stream}


def quiet_console() -> Console:
    """A rich console whose output is kept in memory (the tests assert on results, not on prints)."""
    return Console(file=io.StringIO(), width=120)


async def raw_events(store: JetStreamEventStore) -> list[RawMessage]:
    """Every message of ``EVENTS`` with its sequence, subject, headers (stored time included), data."""
    return await store.read_raw(1, limit=2**62)


async def stream_states(nc: NATS) -> dict[str, tuple[int, int, int]]:
    """(first, last, messages) of every stream."""
    return {
        i.config.name: (i.state.first_seq, i.state.last_seq, i.state.messages)
        for i in await nc.jetstream().streams_info()
    }


@contextlib.asynccontextmanager
async def primary_and_dr(root: Path) -> AsyncIterator[tuple[NatsServer, NatsServer]]:
    """A primary nats-server (JetStream domain ``primary``, a leafnode port) and a disaster-recovery
    server (domain ``dr``) linked to it as a leafnode: the DR side reaches the primary's JetStream API
    as ``$JS.primary.API`` (what ``eda mirror create --source-domain primary`` mirrors through)."""
    leaf_port = free_port()
    listen = f"leafnodes {{ listen: 127.0.0.1:{leaf_port} }}"
    remote = f'leafnodes {{ remotes: [{{ url: "nats-leaf://127.0.0.1:{leaf_port}" }}] }}'
    primary = NatsServer(root / "primary", jetstream_domain="primary", extra_config=listen)
    dr = NatsServer(root / "dr", jetstream_domain="dr", extra_config=remote)
    await primary.start()
    await dr.start()
    try:
        yield primary, dr
    finally:
        await dr.stop()
        await primary.stop()
