"""Wake-ups for read-your-writes: one ``LISTEN eda_orders`` connection per API process.

The projector ``NOTIFY``s ``"<order_id>:<version>,..."`` in the transaction that applies the events, so a
waiter learns about a new version the moment it is committed. ``watch(order_id, version)`` gives an
``asyncio.Event`` that is set once a notification at or beyond ``version`` arrives; callers re-query
after registering (no lost wake-ups) and poll as a fallback while the listener reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from app.readmodel import db
from app.readmodel.sql import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class OrderNotifications:
    """Keeps a LISTEN connection open (reconnecting) and dispatches notifications to waiters."""

    def __init__(self, dsn: str, *, reconnect_s: float = 1.0) -> None:
        self._dsn = dsn
        self._reconnect_s = reconnect_s
        self._waiters: dict[int, list[tuple[int, asyncio.Event]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="order-notifications")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 2.0)

    async def _supervise(self) -> None:
        while True:
            try:
                self._lost.clear()
                conn = await db.connect(self._dsn)
                conn.add_termination_listener(lambda _c: self._lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self._conn = conn
                self._wake_all()  # anything committed while we were away: let waiters re-query
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN %s failed: %s", NOTIFY_CHANNEL, exc)
            self._conn = None
            await asyncio.sleep(self._reconnect_s)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for part in payload.split(","):
            order_id, _, version = part.partition(":")
            try:
                self._wake(int(order_id), int(version))
            except ValueError:
                continue

    def _wake(self, order_id: int, version: int) -> None:
        for wanted, event in self._waiters.get(order_id, ()):
            if version >= wanted:
                event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for _, event in waiters:
                event.set()

    @contextlib.asynccontextmanager
    async def watch(self, order_id: int, version: int) -> AsyncIterator[asyncio.Event]:
        """An event set when ``order_id`` reaches ``version`` in the read model (as notified)."""
        event = asyncio.Event()
        entry = (version, event)
        self._waiters.setdefault(order_id, []).append(entry)
        try:
            yield event
        finally:
            waiters = self._waiters.get(order_id, [])
            with contextlib.suppress(ValueError):
                waiters.remove(entry)
            if not waiters:
                self._waiters.pop(order_id, None)
