"""Live updates for the console: Server-Sent Events fed by a JetStream ordered consumer.

Each SSE connection gets its own ephemeral ordered consumer (in-memory, no acks, removed by the server
once the connection is gone) on the subjects its page shows: all orders (``events.order.>``) for the
list, or one order and its saga (``events.order.<id>``, ``events.saga.<id>``) for the detail page. Only
events JetStream has stored are sent — never a rejected append. Each SSE message carries the stream
sequence as its ``id``, so a reconnecting browser (``Last-Event-ID``) resumes right after the last event
it saw. Comments keep idle connections alive; a connection ends after ``MAX_AGE_S`` (the browser
reconnects and resumes), which also bounds how long a server shutdown waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from app.eventstore.jetstream import STREAM

KEEPALIVE_S = 15.0
MAX_AGE_S = 300.0
QUEUE_MAX = 1000
RESUME_MAX_BEHIND = 10_000


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


def summary(msg: Msg) -> dict[str, object]:
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


def sse(data: dict[str, object], *, event: str, id_: int | None = None) -> bytes:
    """One SSE message."""
    head = f"id: {id_}\n" if id_ is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def _config(feed: Feed, last_sequence: int) -> ConsumerConfig:
    many = len(feed.subjects) > 1
    start = feed.resume_after
    if start is not None and 0 <= last_sequence - start <= RESUME_MAX_BEHIND:
        policy = {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": start + 1}
    else:
        policy = {"deliver_policy": DeliverPolicy.NEW}
    return ConsumerConfig(
        filter_subjects=list(feed.subjects) if many else None,
        inactive_threshold=30.0,
        **policy,  # type: ignore[arg-type]
    )


async def event_source(nc: NATS, feed: Feed, last_sequence: int) -> AsyncIterator[bytes]:
    """The SSE byte stream for ``feed``; runs until the client goes away or ``MAX_AGE_S`` passes."""
    queue: asyncio.Queue[Msg | None] = asyncio.Queue(maxsize=QUEUE_MAX)

    async def on_msg(msg: Msg) -> None:
        try:
            queue.put_nowait(msg)
        except asyncio.QueueFull:  # the browser cannot keep up: tell it to refetch, drop the excess
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    sub = await nc.jetstream().subscribe(
        feed.subjects[0],
        stream=STREAM,
        cb=on_msg,
        ordered_consumer=True,
        config=_config(feed, last_sequence),
    )
    ends = time.monotonic() + MAX_AGE_S
    try:
        yield b"retry: 2000\n" + sse({"last_sequence": last_sequence}, event="hello")
        while (left := ends - time.monotonic()) > 0:
            try:
                msg = await asyncio.wait_for(queue.get(), min(KEEPALIVE_S, left))
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if msg is None:
                yield sse({}, event="resync")
                continue
            data = summary(msg)
            yield sse(data, event="event", id_=int(str(data["sequence"])))
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
