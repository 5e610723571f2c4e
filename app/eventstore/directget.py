"""Batched Direct Get (ADR-31) over one shared reply subscription: the fast read path of the store.

One request returns up to ``batch`` messages of a subject filter from a sequence, ending with a
``204 EOB`` status message; no consumer is created, so loading an aggregate costs one round trip.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from app.eventstore import jsapi
from app.eventstore.envelope import RawMessage
from app.eventstore.ports import EventStoreError

OneBatch = Callable[[str, int, int], Awaitable[tuple[list[RawMessage], int]]]


async def pages(
    one_batch: OneBatch, subject_filter: str, from_sequence: int, *, batch: int, limit: int | None
) -> AsyncIterator[list[RawMessage]]:
    """Batched Direct Get, page after page: ``one_batch(filter, seq, size)`` answers up to ``size``
    messages from ``seq`` and how many more are pending; stops at the end, an empty page or ``limit``."""
    seq = max(1, from_sequence)
    remaining = limit
    while remaining is None or remaining > 0:
        size = batch if remaining is None else min(batch, remaining)
        msgs, pending = await one_batch(subject_filter, seq, size)
        if msgs:
            yield msgs
            seq = msgs[-1].sequence + 1
            if remaining is not None:
                remaining -= len(msgs)
        if not msgs or pending == 0:
            return


class DirectGetter:
    """Issues batched direct gets on a stream; replies are routed by token through one subscription."""

    def __init__(self, nc: NATS, stream: str, *, timeout: float = 5.0) -> None:
        self._nc = nc
        self._stream = stream
        self._timeout = timeout
        self._prefix = nc.new_inbox()
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Queue[Msg]] = {}
        self._sub: Subscription | None = None

    async def _ensure_sub(self) -> None:
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._route)

    async def _route(self, msg: Msg) -> None:
        queue = self._waiting.get(msg.subject.rsplit(".", 1)[-1])
        if queue is not None:
            queue.put_nowait(msg)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def batches(
        self, subject_filter: str, from_sequence: int, *, batch: int = 1000, limit: int | None = None
    ) -> AsyncIterator[list[RawMessage]]:
        """Yield lists of messages matching ``subject_filter`` from ``from_sequence`` in stream order."""
        await self._ensure_sub()
        async for msgs in pages(self._one_batch, subject_filter, from_sequence, batch=batch, limit=limit):
            yield msgs

    async def _one_batch(self, subject_filter: str, seq: int, size: int) -> tuple[list[RawMessage], int]:
        token = str(next(self._tokens))
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        self._waiting[token] = queue
        request = jsapi.next_by_subject_request(seq, subject_filter, size)
        out: list[RawMessage] = []
        try:
            await self._nc.publish(
                jsapi.direct_get_subject(self._stream), request, reply=f"{self._prefix}.{token}"
            )
            async with asyncio.timeout(self._timeout):
                while True:
                    msg = await queue.get()
                    headers = msg.headers or {}
                    status = headers.get("Status")
                    if status == "404":
                        return out, 0
                    if status == "204":  # end of batch
                        return out, int(headers.get("Nats-Num-Pending", "0"))
                    if status:
                        raise EventStoreError(f"direct get failed: {status} {headers.get('Description')}")
                    out.append(
                        RawMessage(
                            sequence=int(headers["Nats-Sequence"]),
                            subject=headers["Nats-Subject"],
                            data=msg.data,
                            headers=headers,
                        )
                    )
        except TimeoutError as exc:
            raise EventStoreError(f"direct get on {self._stream} timed out") from exc
        finally:
            del self._waiting[token]
