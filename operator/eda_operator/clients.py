"""The operator's connections (kept in kopf's ``memo``): NATS, the event store, the snapshot store and
a PostgreSQL pool. Opened lazily, so an operator that starts while NATS or PostgreSQL is down still
serves its health endpoint and reports ``NatsUnavailable``/``DatabaseUnavailable`` on objects."""

from __future__ import annotations

import asyncio
import contextlib

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
            if self._nc is None:
                try:
                    self._nc = await asyncio.wait_for(connect_nats(self.settings, name="eda-operator"), 10)
                except Exception as exc:
                    raise NatsUnavailable(f"cannot connect to NATS: {exc}") from exc
            return self._nc

    async def store(self) -> EventStore:
        nc = await self.nats()
        async with self._lock:
            if self._store is None:
                try:
                    self._store = await open_event_store(nc, self.settings)
                except Exception as exc:
                    raise NatsUnavailable(f"cannot open the EVENTS stream: {exc}") from exc
            return self._store

    async def snapshots(self) -> SnapshotStore:
        nc = await self.nats()
        async with self._lock:
            if self._snapshots is None:
                try:
                    self._snapshots = await SnapshotStore.open(
                        nc.jetstream(), replicas=self.settings.stream_replicas
                    )
                except Exception as exc:
                    raise NatsUnavailable(f"cannot open the snapshots bucket: {exc}") from exc
            return self._snapshots

    async def pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                dsn = self.settings.database_url.get_secret_value()
                try:
                    self._pool = await asyncio.wait_for(db.create_pool(dsn, size=4), 10)
                except Exception as exc:
                    raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
            return self._pool

    async def mirror(self) -> NATS | None:
        """The disaster-recovery mirror's cluster (``EDA_MIRROR_URL``), ``None`` when none is configured."""
        if not self.settings.mirror_url:
            return None
        async with self._lock:
            if self._mirror is None:
                try:
                    self._mirror = await asyncio.wait_for(
                        connect_mirror(self.settings, self.settings.mirror_url, self.settings.mirror_creds),
                        10,
                    )
                except Exception as exc:
                    raise NatsUnavailable(f"cannot connect to the mirror: {exc}") from exc
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
