"""How far a projection is behind the event store, as metrics: ``eda.projection.lag.events`` (events
not yet applied) and ``eda.projection.lag.seconds`` (age of the oldest event not yet applied; 0 when
caught up), both labelled ``projection``. Sampled by the active projector once a second from NATS alone,
so a stalled database or a stuck batch shows as growing lag instead of a frozen last value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from app.eventstore.codec import EventCodec
from app.eventstore.directget import DirectGetter
from app.eventstore.jetstream import STREAM
from app.telemetry import meter

log = logging.getLogger(__name__)
SAMPLE_EVERY_S = 1.0


class ProjectionLag:
    """The two lag gauges of one projection and the loop that keeps them current."""

    def __init__(self, nc: NATS, codec: EventCodec, projection: str, durable: str, subjects: str) -> None:
        self._nc = nc
        self._codec = codec
        self._durable = durable
        self._subjects = subjects
        self._attrs = {"projection": projection}
        m = meter()
        self._events = m.create_gauge(
            "eda.projection.lag.events",
            unit="{event}",
            description="Events not yet applied to the projection",
        )
        self._seconds = m.create_gauge(
            "eda.projection.lag.seconds",
            unit="s",
            description="Age of the oldest event not yet applied to the projection (0 when caught up)",
        )

    async def sample(self, checkpoint: int) -> tuple[int, float]:
        """Measure once and set the gauges; returns (events, seconds)."""
        try:
            info = await self._nc.jetstream(timeout=2.0).consumer_info(STREAM, self._durable)
        except NotFoundError:
            return 0, 0.0
        events = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        seconds = 0.0
        if events:
            oldest = await self._oldest_unapplied(checkpoint)
            if oldest is not None:
                seconds = max(0.0, (datetime.now(UTC) - oldest).total_seconds())
        self._events.set(events, self._attrs)
        self._seconds.set(seconds, self._attrs)
        return events, seconds

    async def _oldest_unapplied(self, checkpoint: int) -> datetime | None:
        getter = DirectGetter(self._nc, STREAM, timeout=2.0)
        try:
            async for batch in getter.batches(self._subjects, checkpoint + 1, batch=1, limit=1):
                for raw in batch:
                    return self._codec.decode(raw.data, raw.sequence).envelope.occurred_at
        finally:
            await getter.close()
        return None

    async def run(self, checkpoint: Callable[[], int]) -> None:
        """Sample every second until cancelled (errors are logged, never fatal)."""
        while True:
            try:
                await self.sample(checkpoint())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("projection lag sample failed: %r", exc)
            await asyncio.sleep(SAMPLE_EVERY_S)
