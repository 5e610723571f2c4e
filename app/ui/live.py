"""Live updates for the console: Server-Sent Events fed by ONE JetStream consumer per API process.

``LiveFeed`` holds a single ordered consumer (ephemeral, in memory, no acks) on the order and saga
events, started when the first SSE connection arrives and stopped ``LINGER_S`` after the last one
left, and fans every stored event out to the connections whose page shows it: all orders
(``events.order.>``) for the list, or one order and its saga (``events.order.<id>``,
``events.saga.<id>``) for the detail page. So the number of browsers costs no JetStream consumers, and
the API's NATS user needs no right to create them beyond this one ephemeral consumer.

Only events JetStream has stored are sent — never a rejected append. Each SSE message carries the
stream sequence as its ``id``. The feed keeps the last ``RECENT`` summaries: a reconnecting browser
(``Last-Event-ID``) gets what it missed from them when they cover the gap, else a ``resync`` event
(the page refetches); so does a browser that cannot keep up. Comments keep idle connections alive; a
connection ends after ``MAX_AGE_S`` (the browser reconnects and resumes), which also bounds how long
a server shutdown waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from app.eventstore.jetstream import STREAM
from app.eventstore.jsapi import subject_matches

KEEPALIVE_S = 15.0
MAX_AGE_S = 300.0
QUEUE_MAX = 1000
RECENT = 5000
LINGER_S = 30.0
SUBJECTS = ("events.order.>", "events.saga.>")

Summary = dict[str, object]


@dataclass(frozen=True, slots=True)
class Feed:
    """Which events one SSE connection follows and where it resumes."""

    subjects: tuple[str, ...]
    resume_after: int | None = None

    @classmethod
    def for_page(cls, order_id: int | None, last_event_id: str | None) -> Feed:
        if order_id:
            subjects: tuple[str, ...] = (f"events.order.{order_id}", f"events.saga.{order_id}")
        else:
            subjects = ("events.order.>",)
        resume = None
        if last_event_id and last_event_id.isascii() and last_event_id.isdigit():  # isdigit() takes "²"
            resume = int(last_event_id)
        return cls(subjects=subjects, resume_after=resume)

    def shows(self, subject: str) -> bool:
        return any(subject_matches(pattern, subject) for pattern in self.subjects)


def summary(msg: Msg) -> Summary:
    """The small JSON an SSE message carries (the page fetches details itself)."""
    try:
        env = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        env = {}
    _, aggregate_type, aggregate_id = [*msg.subject.split(".", 2), "", ""][:3]
    return {
        "sequence": msg.metadata.sequence.stream,
        "subject": msg.subject,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "type": env.get("type"),
        "version": env.get("aggregate_version"),
        "occurred_at": env.get("occurred_at"),
    }


def sse(data: Summary, *, event: str, id_: int | None = None) -> bytes:
    """One SSE message."""
    head = f"id: {id_}\n" if id_ is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


@dataclass(eq=False)
class _Listener:
    feed: Feed
    queue: asyncio.Queue[Summary] = field(default_factory=lambda: asyncio.Queue(maxsize=QUEUE_MAX))
    behind: bool = False  # events were dropped (a full queue, or a resume the feed cannot cover)

    def offer(self, item: Summary) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.behind = True


class LiveFeed:
    """The API process's one consumer of the console's events, fanned out to its SSE connections."""

    def __init__(self, nc: NATS, *, recent: int = RECENT, linger_s: float = LINGER_S) -> None:
        self._nc = nc
        self._linger_s = linger_s
        self._listeners: set[_Listener] = set()
        self._recent: deque[Summary] = deque(maxlen=recent)
        self._complete_from = 0  # every event from this sequence on is in _recent (0: not running)
        self._sub: Any = None
        self._starting = asyncio.Lock()
        self._stopper: asyncio.Task[None] | None = None

    async def _start(self, last_sequence: int) -> None:
        async with self._starting:
            if self._sub is not None:
                return
            config = ConsumerConfig(
                filter_subjects=list(SUBJECTS),
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=last_sequence + 1,
                inactive_threshold=30.0,
            )
            self._recent.clear()
            self._complete_from = last_sequence + 1
            self._sub = await self._nc.jetstream().subscribe(
                SUBJECTS[0], stream=STREAM, cb=self._on_msg, ordered_consumer=True, config=config
            )

    async def _on_msg(self, msg: Msg) -> None:
        item = summary(msg)
        if len(self._recent) == self._recent.maxlen:
            self._complete_from = int(str(self._recent[0]["sequence"])) + 1
        self._recent.append(item)
        for listener in self._listeners:
            if listener.feed.shows(msg.subject):
                listener.offer(item)

    async def _join(self, feed: Feed, last_sequence: int) -> _Listener:
        if self._stopper is not None:
            self._stopper.cancel()
            self._stopper = None
        await self._start(last_sequence)
        listener = _Listener(feed)
        after = feed.resume_after
        if after is not None and after < last_sequence:
            if after + 1 >= self._complete_from:  # replay the missed events, then the live ones
                for item in self._recent:
                    if int(str(item["sequence"])) > after and feed.shows(str(item["subject"])):
                        listener.offer(item)
            else:
                listener.behind = True
        self._listeners.add(listener)  # no await since the replay: nothing is missed or sent twice
        return listener

    def _leave(self, listener: _Listener) -> None:
        self._listeners.discard(listener)
        if not self._listeners and self._sub is not None and self._stopper is None:
            self._stopper = asyncio.create_task(self._stop_later(), name="live-feed-stop")

    async def _stop_later(self) -> None:
        await asyncio.sleep(self._linger_s)
        self._stopper = None
        if not self._listeners:
            await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        sub, self._sub, self._complete_from = self._sub, None, 0
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def close(self) -> None:
        if self._stopper is not None:
            self._stopper.cancel()
            self._stopper = None
        await self._unsubscribe()

    async def events(self, feed: Feed, last_sequence: int) -> AsyncIterator[bytes]:
        """The SSE byte stream for ``feed``; runs until the client goes away or ``MAX_AGE_S`` passes."""
        listener = await self._join(feed, last_sequence)
        ends = time.monotonic() + MAX_AGE_S
        try:
            yield b"retry: 2000\n" + sse({"last_sequence": last_sequence}, event="hello")
            while (left := ends - time.monotonic()) > 0:
                if listener.behind:  # tell the page to refetch; what is queued is stale too
                    listener.behind = False
                    while not listener.queue.empty():
                        listener.queue.get_nowait()
                    yield sse({}, event="resync")
                    continue
                try:
                    item = await asyncio.wait_for(listener.queue.get(), min(KEEPALIVE_S, left))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield sse(item, event="event", id_=int(str(item["sequence"])))
        finally:
            self._leave(listener)
