"""The contract suite's fixture: each test runs once per ``EventStore`` — the in-memory twin and the
JetStream adapter on the session's real nats-server — as ``eventsourcing`` runs its application tests
against each recorder. The JetStream case starts the server only when it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from nats.aio.client import Client as NATS

from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.jetstream import STREAM, JetStreamEventStore
from app.eventstore.memory import InMemoryEventStore
from app.eventstore.ports import EventStore


@dataclass
class Subject:
    """A store under test, and how to make it forget recent event ids (its duplicate window ends)."""

    store: EventStore
    forget_recent_ids: Callable[[], Awaitable[None]]


async def _nothing_to_forget() -> None:
    return None


@pytest.fixture
def memory_subject() -> Subject:
    return Subject(InMemoryEventStore(EventCodec(all_event_types())), _nothing_to_forget)


@pytest.fixture
async def jetstream_subject(store: JetStreamEventStore, nc: NATS) -> Subject:
    js = nc.jetstream()

    async def shrink_window_and_wait() -> None:
        config = (await js.stream_info(STREAM)).config
        config.duplicate_window = 0.2
        await js.update_stream(config)
        await asyncio.sleep(0.4)

    return Subject(store, shrink_window_and_wait)


@pytest.fixture(params=["memory", "jetstream"])
def subject(request: pytest.FixtureRequest) -> Subject:
    """Resolved lazily, so the memory case needs no server (a sync fixture: pytest-asyncio cannot
    resolve an async fixture from inside another one's set-up)."""
    found: Subject = request.getfixturevalue(f"{request.param}_subject")
    return found
