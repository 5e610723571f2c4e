"""Chaos fixtures: a fresh 3-node JetStream cluster per test (``app.dev.cluster``) and application-style
connections to it (``connect_nats`` with all three URLs). The helpers (leaders, digests, figures) are in
``tests/support/chaos.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from app.dev.cluster import NatsCluster, running_cluster
from app.eventstore.connection import connect_nats
from app.settings import Settings


@pytest.fixture
async def cluster(short_tmp: Path) -> AsyncIterator[NatsCluster]:
    async with running_cluster(short_tmp / "cluster") as c:
        yield c


@pytest.fixture
async def connect(cluster: NatsCluster) -> AsyncIterator[Callable[[str], Awaitable[NATS]]]:
    """``await connect(name)``: a connection made exactly as the application makes it."""
    made: list[NATS] = []

    async def _connect(name: str) -> NATS:
        nc = await connect_nats(Settings(nats_url=cluster.url), name=name)
        made.append(nc)
        return nc

    yield _connect
    for nc in made:
        if not nc.is_closed:
            await nc.close()
