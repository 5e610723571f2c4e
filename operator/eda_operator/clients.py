"""The operator's connections (kept in kopf's ``memo``): NATS, the event store, the snapshot store and
a PostgreSQL pool. Opened lazily, so an operator that starts while NATS or PostgreSQL is down still
serves its health endpoint and reports ``NatsUnavailable``/``DatabaseUnavailable`` on objects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial

import asyncpg
from nats.aio.client import Client as NATS

from app.backup.mirror import connect_mirror
from app.eventstore.connection import connect_nats
from app.eventstore.jetstream import open_event_store
from app.eventstore.ports import EventStore
from app.eventstore.snapshots import SnapshotStore
from app.readmodel import db
from app.settings import Settings
from eda_operator.errors import DatabaseUnavailable, NatsUnavailable


class Clients:
    """Lazily connected clients shared by every handler of one operator process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = asyncio.Lock()
        self._nc: NATS | None = None
        self._store: EventStore | None = None
        self._snapshots: SnapshotStore | None = None
        self._pool: asyncpg.Pool | None = None
        self._mirror: NATS | None = None

    async def nats(self) -> NATS:
        async with self._lock:
            connect = partial(connect_nats, self.settings, name="eda-operator")
            self._nc = await _opened(self._nc, connect, NatsUnavailable, "connect to NATS", 10)
            return self._nc

    async def store(self) -> EventStore:
        nc = await self.nats()
        async with self._lock:
            open_ = partial(open_event_store, nc, self.settings)
            self._store = await _opened(self._store, open_, NatsUnavailable, "open the EVENTS stream")
            return self._store

    async def snapshots(self) -> SnapshotStore:
        nc = await self.nats()
        async with self._lock:
            bucket = partial(SnapshotStore.open, nc.jetstream())
            what = "open the snapshots bucket"
            self._snapshots = await _opened(self._snapshots, bucket, NatsUnavailable, what)
            return self._snapshots

    async def pool(self) -> asyncpg.Pool:
        async with self._lock:
            create = partial(db.create_pool, self.settings.database_url.get_secret_value(), size=4)
            self._pool = await _opened(self._pool, create, DatabaseUnavailable, "connect to PostgreSQL", 10)
            return self._pool

    async def mirror(self) -> NATS | None:
        """The disaster-recovery mirror's cluster (``EDA_MIRROR_URL``), ``None`` when none is configured."""
        url = self.settings.mirror_url
        if not url:
            return None
        async with self._lock:
            connect = partial(connect_mirror, self.settings, url, self.settings.mirror_creds)
            self._mirror = await _opened(self._mirror, connect, NatsUnavailable, "connect to the mirror", 10)
            return self._mirror

    @property
    def nats_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def close(self) -> None:
        """Close whatever was opened (idempotent)."""
        async with self._lock:
            if self._store is not None:
                with contextlib.suppress(Exception):
                    await self._store.close()
            for nc in (self._nc, self._mirror):
                if nc is not None:
                    with contextlib.suppress(Exception):
                        await nc.close()
            if self._pool is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._pool.close(), 5)
            self._nc, self._store, self._snapshots, self._pool, self._mirror = None, None, None, None, None


async def _opened[T](
    current: T | None,
    open_: Callable[[], Awaitable[T]],
    error: type[Exception],
    what: str,
    timeout: float | None = None,
) -> T:
    """``current``, or else what ``open_`` opens (within ``timeout`` s); a failure is an ``error`` saying
    what could not be done (the handlers report it on the object and retry)."""
    if current is not None:
        return current
    try:
        return await asyncio.wait_for(open_(), timeout)
    except Exception as exc:
        raise error(f"cannot {what}: {exc}") from exc
