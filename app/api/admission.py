"""Admission of new orders by the saga's backlog (docs/security.md § Abuse limits, docs/saga.md).

Every accepted order is a saga the orchestrator must run. Past its capacity, accepting more only makes
every saga slower — and on a machine the roles share, the API's own work starves the saga further (a
2-core run at 1.7x the saga's capacity completed fewer sagas per second than at capacity). So
``POST /api/v1/orders`` is refused with ``503 saga-backlog`` (``Retry-After``) while more than
``EDA_ADMISSION_SAGA_BACKLOG`` order, reservation, payment and shipping events wait undelivered on the
orchestrator's durable consumer (``num_pending`` of ``saga-orchestrator``): the backlog that grows only
when the saga falls behind (events it is working on are ``ack_pending``, not counted). Reads, cancels
and everything else are still served; orders already accepted are never dropped.

``SagaBacklog`` samples that count every ``SAMPLE_EVERY_S`` in a task of the API process (one
``CONSUMER.INFO`` request: the ``api`` NATS user's read-only introspection); each request only reads
the last sample. Until a first sample, or when the consumer cannot be read (not provisioned yet, NATS
away), orders are admitted — an unknown backlog is no reason to refuse (the append itself fails if
NATS is down). ``Retry-After`` is the time the saga needs to bring the backlog back under the limit at
the rate it consumed during the last samples (1..60 s).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from nats.js.client import JetStreamContext

from app.api.errors import Problem
from app.eventstore.jetstream import STREAM
from app.saga.census import ORCHESTRATOR_CONSUMER

log = logging.getLogger(__name__)
SAMPLE_EVERY_S = 0.5
MAX_RETRY_AFTER_S = 60


class SagaBacklog:
    """The orchestrator's undelivered events, sampled; ``admit()`` refuses an order past ``limit``."""

    def __init__(self, js: JetStreamContext, limit: int, every: float = SAMPLE_EVERY_S) -> None:
        self._js = js
        self.limit = limit
        self._every = every
        self.pending: int | None = None  # None: unknown (no sample yet, or the last one failed)
        self._rate = 0.0  # events/s the orchestrator took from its consumer between the last samples
        self._last: tuple[float, int] | None = None  # (monotonic time, delivered consumer sequence)

    def admit(self) -> None:
        """Raise ``503 saga-backlog`` when the last sample is above the limit (0: never)."""
        if not self.limit or self.pending is None or self.pending <= self.limit:
            return
        excess = self.pending - self.limit
        retry_after = min(MAX_RETRY_AFTER_S, max(1, math.ceil(excess / self._rate))) if self._rate else 5
        raise Problem(
            503,
            "saga-backlog",
            "Service unavailable",
            f"{self.pending} events wait for the saga (admission limit {self.limit}): orders are "
            "accepted again once it catches up; retry",
            headers={"Retry-After": str(retry_after)},
        )

    async def sample(self) -> None:
        """Read the consumer once (an error leaves the backlog unknown: orders admitted)."""
        try:
            info = await self._js.consumer_info(STREAM, ORCHESTRATOR_CONSUMER)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.pending is not None:
                log.warning("saga backlog unknown (%r): admitting orders until it can be read", exc)
            self.pending, self._last = None, None
            return
        now, delivered = time.monotonic(), int(info.delivered.consumer_seq or 0)
        if self._last is not None and now > self._last[0]:
            self._rate = max(0.0, (delivered - self._last[1]) / (now - self._last[0]))
        self._last = (now, delivered)
        self.pending = int(info.num_pending or 0)

    async def run(self) -> None:
        """Sample until cancelled (off when the limit is 0)."""
        while self.limit:
            await self.sample()
            await asyncio.sleep(self._every)
