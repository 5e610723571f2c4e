"""Commands to workers and the durable pull-consumer loop shared by the saga and the workers.

Owns the wire contract between the orchestrator and the workers (they are independent layers, so it
lives below both): the work-queue stream ``COMMANDS`` with subjects ``cmd.<worker>.<order_id>``, the
command document, its headers (``Nats-Msg-Id`` = command id, correlation/causation ids, W3C trace
context), and ``PullLoop``: fetch from a durable consumer, run handlers concurrently (serialised per
key when asked, so one saga's reactions run in order), ack/nak/term, stop cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import msgspec
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError

from app.eventstore.envelope import Metadata

log = logging.getLogger(__name__)

COMMANDS_STREAM = "COMMANDS"
WorkerName = Literal["inventory", "payment", "shipping"]
WORKERS: tuple[WorkerName, ...] = ("inventory", "payment", "shipping")
CONSUMER_EXISTS = 10148


def commands_stream_config(replicas: int) -> StreamConfig:
    """Work queue: each command is removed once a worker acks it; 2 min dedupe on the command id."""
    return StreamConfig(
        name=COMMANDS_STREAM,
        subjects=["cmd.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.WORK_QUEUE,
        discard=DiscardPolicy.OLD,
        max_age=7 * 86400.0,
        num_replicas=replicas,
        duplicate_window=120.0,
    )


class Item(msgspec.Struct, frozen=True):
    product_id: int
    quantity: int


class WorkerCommand(msgspec.Struct, frozen=True, kw_only=True):
    """What the saga asks a worker to do. ``kind``: reserve|release|commit, charge|refund, ship|recall."""

    command_id: str
    kind: str
    order_id: int
    user_id: int = 0
    amount: str = "0"
    items: tuple[Item, ...] = ()


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(type=WorkerCommand)


def decode_command(data: bytes) -> WorkerCommand:
    return _DECODER.decode(data)


def meta_headers(meta: Metadata, msg_id: str) -> dict[str, str]:
    headers = {"Nats-Msg-Id": msg_id, "Eda-Correlation-Id": meta.correlation_id}
    if meta.causation_id:
        headers["Eda-Causation-Id"] = meta.causation_id
    if meta.traceparent:
        headers["traceparent"] = meta.traceparent
    if meta.tracestate:
        headers["tracestate"] = meta.tracestate
    return headers


def meta_from_headers(headers: dict[str, str] | None, causation_id: str) -> Metadata:
    """The metadata a worker puts on its events: the saga's correlation id, caused by the command."""
    h = headers or {}
    return Metadata(
        correlation_id=h.get("Eda-Correlation-Id", causation_id),
        causation_id=causation_id,
        traceparent=h.get("traceparent"),
        tracestate=h.get("tracestate"),
    )


async def publish_command(
    js: JetStreamContext, worker: WorkerName, cmd: WorkerCommand, meta: Metadata
) -> None:
    """Publish once per command id (server-side dedupe; the worker is idempotent beyond the window)."""
    await js.publish(
        f"cmd.{worker}.{cmd.order_id}", _ENCODER.encode(cmd), headers=meta_headers(meta, cmd.command_id)
    )


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer; an existing one is updated by the server (create-or-update)."""
    try:
        await js.add_consumer(stream, config)
    except APIError as exc:
        if exc.err_code != CONSUMER_EXISTS:
            raise
        log.info("consumer %s exists with another config; keeping it", config.durable_name)


Outcome = Literal["ack", "nak", "term"]
Handler = Callable[[Msg], Awaitable[None]]


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
class PullLoop:
    """Fetch from a bound durable pull consumer and handle messages concurrently.

    ``handler`` returns normally → ack; raises ``PermanentError`` → term (logged); any other
    exception → nak with backoff (redelivered). ``key`` serialises messages of one key in fetch order.
    """

    js: JetStreamContext
    stream: str
    durable: str
    handler: Handler
    concurrency: int = 64
    key: Callable[[Msg], str] | None = None
    name: str = "consumer"
    locks: KeyedLocks | None = None

    def __post_init__(self) -> None:
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.handled = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Until ``stop()``: fetch and dispatch; then wait for in-flight messages (drain)."""
        sub = await self.js.pull_subscribe_bind(self.durable, stream=self.stream)
        try:
            while not self._stopping.is_set():
                await self._slots.acquire()
                free = 1
                while free < min(self.concurrency, 256) and not self._slots.locked():
                    await self._slots.acquire()
                    free += 1
                try:
                    msgs = await sub.fetch(free, timeout=0.5)
                except TimeoutError:
                    msgs = []
                except Exception:
                    if self._stopping.is_set():
                        msgs = []
                    else:
                        log.warning("%s: fetch failed", self.name, exc_info=True)
                        await asyncio.sleep(0.5)
                        msgs = []
                for msg in msgs:
                    task = asyncio.create_task(self._one(msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                for _ in range(free - len(msgs)):
                    self._slots.release()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _one(self, msg: Msg) -> None:
        try:
            if self.key is None:
                await self._handle(msg)
                return
            if self.locks is None:
                self.locks = KeyedLocks()
            async with self.locks.hold(self.key(msg)):
                await self._handle(msg)
        finally:
            self._slots.release()

    async def _handle(self, msg: Msg) -> None:
        try:
            await self.handler(msg)
        except PermanentError as exc:
            log.error("%s: dropping %s: %s", self.name, msg.subject, exc)
            await _settle(msg, "term")
        except Exception as exc:
            deliveries = msg.metadata.num_delivered if msg.metadata else 1
            log.info("%s: %s failed (delivery %d): %r", self.name, msg.subject, deliveries, exc)
            await _settle(msg, "nak", backoff_s(deliveries))
        else:
            self.handled += 1
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
