"""The durable pull-consumer loop of the saga and the workers.

Owns ``PullLoop`` (fetch from a durable consumer with continuous pull requests, run handlers
concurrently — serialised per key when asked, so one saga's reactions run in order — ack/nak/term,
stop cleanly), its redelivery backoff and ``KeyedLocks``. The durable consumers themselves are created
by ``eda provision`` (``app.deploy.provision``); a role only checks they exist (``app.eventstore.required``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from app.eventstore import jsapi
from app.telemetry import meter

log = logging.getLogger(__name__)


Outcome = Literal["ack", "nak", "term"]


class Held:
    """A handler's answer for "I keep this message unacknowledged" (``app.saga.runner`` holds a saga's
    trigger while a step runs): the loop neither acks nor naks it, and its slot is free again."""


HELD = Held()
Handler = Callable[[Msg], Awaitable[Held | None]]


def backoff_s(deliveries: int) -> float:
    """Redelivery delay after the n-th failed delivery: 0.1 s doubling, capped at 5 s."""
    return float(min(0.1 * 2 ** max(deliveries - 1, 0), 5.0))


class KeyedLocks:
    """FIFO locks by key, dropped when unused; share one between loops that touch the same keys."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


@dataclass
class _PullRequest:
    remaining: int
    expires_at: float


@dataclass
class PullLoop:
    """Consume a durable pull consumer with continuous pull requests and handle messages concurrently.

    Messages are handled as they arrive (no batch round trip): pull requests for the free capacity
    are kept outstanding (``expires`` 3 s) and topped up whenever a handler finishes. ``handler``
    returns normally → ack (``HELD``: the handler keeps it); raises ``PermanentError`` → term (logged);
    any other exception → nak with backoff (redelivered). ``key`` serialises messages of one key in
    arrival order.
    """

    nc: NATS
    stream: str
    durable: str
    handler: Handler
    concurrency: int = 64
    key: Callable[[Msg], str] | None = None
    name: str = "consumer"
    locks: KeyedLocks | None = None
    heartbeat_s: float = 2.0
    expires_s: float = 3.0
    tick: Callable[[], Awaitable[None]] | None = None
    """Called every ``heartbeat_s / 4`` while the loop runs (the saga's held triggers: see HELD)."""

    def __post_init__(self) -> None:
        self._retries = meter().create_counter(
            "eda.consumer.retries", unit="{message}", description="Failed deliveries sent back for a retry"
        )
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._inflight = 0
        self._requests: deque[_PullRequest] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        # in-flight messages by id() (Msg is unhashable) → (message, arrival), for +WPI heartbeats
        self._arrived: dict[int, tuple[Msg, float]] = {}
        self.handled = 0

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _requested(self) -> int:
        now = time.monotonic()
        while self._requests and self._requests[0].expires_at < now:
            self._requests.popleft()  # expired without a status message (e.g. lost on a reconnect)
        return sum(r.remaining for r in self._requests)

    async def run(self) -> None:
        """Until ``stop()``: keep pull requests outstanding and dispatch; then drain in-flight work."""
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, cb=self._on_msg)
        subject = jsapi.consumer_next_subject(self.stream, self.durable)
        beats = asyncio.create_task(self._heartbeats(), name=f"{self.name}-heartbeats")
        try:
            while not self._stopping.is_set():
                free = self.concurrency - self._inflight - self._requested()
                if free > 0 and (free >= max(1, self.concurrency // 4) or not self._requests):
                    batch = min(free, 1000)
                    self._requests.append(_PullRequest(batch, time.monotonic() + self.expires_s + 1.0))
                    try:
                        await self.nc.publish(subject, jsapi.pull_request(batch, self.expires_s), reply=inbox)
                    except Exception:
                        log.warning("%s: pull request failed", self.name, exc_info=True)
                        self._requests.clear()
                        await asyncio.sleep(0.5)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.expires_s / 2)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            beats.cancel()

    async def _on_msg(self, msg: Msg) -> None:
        status = (msg.headers or {}).get("Status")
        if status is not None and not msg.data:
            if status in ("408", "409") and self._requests:
                self._requests.popleft()  # that request is over (expired / interrupted)
                self._wake.set()
            return  # 100 heartbeat, 404 no messages
        if self._requests:
            self._requests[0].remaining -= 1
            if self._requests[0].remaining <= 0:
                self._requests.popleft()
        if self._stopping.is_set():
            return  # not ours any more: redelivered after ack_wait
        self._inflight += 1
        task = asyncio.create_task(self._one(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._inflight -= 1
        self._wake.set()

    async def _one(self, msg: Msg) -> None:
        # heartbeats count from arrival: a message queued behind its key's lock is ours too
        self._arrived[id(msg)] = (msg, time.monotonic())
        try:
            if self.key is None:
                await self._handle_beating(msg)
                return
            if self.locks is None:
                self.locks = KeyedLocks()
            async with self.locks.hold(self.key(msg)):
                await self._handle_beating(msg)
        finally:
            self._arrived.pop(id(msg), None)

    async def _heartbeats(self) -> None:
        """Keep slow messages ours (``+WPI`` every ``heartbeat_s`` while in flight): ack_wait then only
        detects crashed consumers. One ticker per loop, not a task per message."""
        tick = self.heartbeat_s / 4
        last: dict[int, float] = {}
        ticking: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(tick)
                await self._beat(last)
                if self.tick is not None and (ticking is None or ticking.done()):
                    # its own task: a slow tick must not hold back the heartbeats
                    ticking = asyncio.create_task(self._tick(self.tick), name=f"{self.name}-tick")
        finally:
            if ticking is not None:
                ticking.cancel()

    async def _beat(self, last: dict[int, float]) -> None:
        """``+WPI`` for every in-flight message not told so for ``heartbeat_s``."""
        now = time.monotonic()
        for key, (msg, arrived) in list(self._arrived.items()):
            if now - last.get(key, arrived) >= self.heartbeat_s:
                last[key] = now
                with contextlib.suppress(Exception):
                    await msg.in_progress()
        for key in [k for k in last if k not in self._arrived]:
            del last[key]

    async def _tick(self, tick: Callable[[], Awaitable[None]]) -> None:
        try:
            await tick()
        except Exception:
            log.warning("%s: tick failed", self.name, exc_info=True)

    async def _handle_beating(self, msg: Msg) -> None:
        try:
            held = await self.handler(msg)
        except PermanentError as exc:
            log.error("%s: dropping %s: %s", self.name, msg.subject, exc)
            await _settle(msg, "term")
        except Exception as exc:
            deliveries = msg.metadata.num_delivered if msg.metadata else 1
            self._retries.add(1, {"consumer": self.name})
            log.info("%s: %s failed (delivery %d): %r", self.name, msg.subject, deliveries, exc)
            await _settle(msg, "nak", backoff_s(deliveries))
        else:
            self.handled += 1
            if held is None:
                await _settle(msg, "ack")


class PermanentError(Exception):
    """A message that can never succeed (malformed, not allowed): terminated, not redelivered."""


async def _settle(msg: Msg, outcome: Outcome, delay: float = 0.0) -> None:
    try:
        if outcome == "ack":
            await msg.ack()
        elif outcome == "nak":
            await msg.nak(delay=delay)
        else:
            await msg.term()
    except Exception:  # connection lost: the server redelivers after ack_wait, handlers are idempotent
        log.warning("could not %s %s", outcome, msg.subject, exc_info=True)
