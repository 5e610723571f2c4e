"""Fixtures of the operator suite: a clean JetStream, the event store, a fresh database with the read
model migrated (schema ``readmodel``) and an asyncpg pool on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS

from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.snapshots import SnapshotStore
from app.readmodel import db
from app.readmodel.migrations import migrate_dsn

LIVE = "readmodel"


@pytest.fixture
async def nc(nats_url: str, js_clean: None) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def store(nc: NATS) -> AsyncIterator[JetStreamEventStore]:
    s = await JetStreamEventStore.open(nc, EventCodec(all_event_types()))
    yield s
    await s.close()


@pytest.fixture
async def snapshots(nc: NATS) -> SnapshotStore:
    return await SnapshotStore.open(nc.jetstream())


@pytest.fixture
async def readmodel_dsn(fresh_db: str) -> str:
    await migrate_dsn(fresh_db, LIVE)
    return fresh_db


@pytest.fixture
async def pool(readmodel_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(readmodel_dsn, size=6)
    yield p
    await p.close()
