"""Order id allocation: small integers from a JetStream counter, without a central lock.

Stream ``COUNTERS`` (``allow_msg_counter``, subjects ``counters.>``): a request on ``counters.order_id``
with header ``Nats-Incr: k`` atomically adds k to the counter and answers ``{"val": "N"}``, so the ids
``N-k+1 .. N`` belong to the caller. The server serialises increments, so concurrent API replicas never
get the same id. Only the latest value per subject is kept. Retries of one idempotent request reuse the
id stored with its Idempotency-Key (see ``app.api.idempotency``), so they never burn a second id.

Group allocation: while one increment is in flight, the requests that arrive queue up and the next
increment takes ids for all of them at once (``Nats-Incr: k``), so under load one fsync'd counter write
serves many creates, and a lone request still goes out at once (no added latency). Every id of a range
is handed to a waiting request — ids stay dense; an id whose request was cancelled while waiting goes
to the next request instead of being dropped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

import orjson
from nats.aio.client import Client as NATS
from nats.js.client import JetStreamContext

from app.eventstore.counters import ORDER_ID_SUBJECT, STREAM, counters_stream_config
from app.eventstore.required import require_stream

__all__ = ["ORDER_ID_SUBJECT", "STREAM", "IdAllocationError", "OrderIds", "counters_stream_config"]


class IdAllocationError(RuntimeError):
    """The counter did not answer with a value."""


class IdSource(Protocol):
    """Where order ids come from: ``next()`` returns an id no other caller ever gets, from 1 upwards,
    dense (``tests/contract`` holds ``OrderIds`` and its twin to it)."""

    async def next(self) -> int: ...


class InMemoryOrderIds:
    """The twin of ``OrderIds``: a counter in this process (unit tests)."""

    def __init__(self, last: int = 0) -> None:
        self._last = last

    async def next(self) -> int:
        await asyncio.sleep(0)
        self._last += 1
        return self._last


class OrderIds:
    """Allocates order ids; create with ``await OrderIds.open(nc)``."""

    def __init__(self, nc: NATS, *, timeout: float = 5.0, max_batch: int = 256) -> None:
        self._nc = nc
        self._timeout = timeout
        self._max_batch = max_batch
        self._waiting: deque[asyncio.Future[int]] = deque()
        self._spare: deque[int] = deque()  # ids of requests cancelled while they waited
        self._allocator: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, nc: NATS, *, timeout: float = 5.0) -> OrderIds:
        """The allocator on the provisioned stream ``COUNTERS`` (``NotProvisioned`` while it is missing)."""
        js: JetStreamContext = nc.jetstream(timeout=timeout)
        await require_stream(js, STREAM)
        return cls(nc, timeout=timeout)

    async def next(self) -> int:
        """A fresh order id (1, 2, 3, ...)."""
        if self._spare:
            return self._spare.popleft()
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if self._allocator is None:
            self._allocator = asyncio.create_task(self._allocate(), name="order-id-allocator")
        return await waiter

    async def _allocate(self) -> None:
        try:
            while self._waiting:
                batch = [self._waiting.popleft() for _ in range(min(len(self._waiting), self._max_batch))]
                try:
                    top = await self._increment(len(batch))
                except Exception as exc:  # handed to every waiter of the batch
                    for waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                except BaseException:  # the allocator itself was cancelled (shutdown)
                    for waiter in [*batch, *self._waiting]:
                        waiter.cancel()
                    raise
                left: list[int] = []
                for waiter, order_id in zip(batch, range(top - len(batch) + 1, top + 1), strict=True):
                    if waiter.done():  # cancelled while waiting: its id goes to another request
                        left.append(order_id)
                    else:
                        waiter.set_result(order_id)
                for order_id in left:
                    while self._waiting and self._waiting[0].done():
                        self._waiting.popleft()
                    if self._waiting:
                        self._waiting.popleft().set_result(order_id)
                    else:
                        self._spare.append(order_id)
        finally:
            self._allocator = None

    async def _increment(self, by: int) -> int:
        msg = await self._nc.request(
            ORDER_ID_SUBJECT, b"", headers={"Nats-Incr": str(by)}, timeout=self._timeout
        )
        reply = orjson.loads(msg.data)
        if "val" not in reply:
            raise IdAllocationError(f"counter error: {reply.get('error')}")
        return int(reply["val"])
