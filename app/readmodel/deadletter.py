"""Poison events: isolate the one event a projection cannot apply, retry it with backoff, then park it in
the dead-letter stream and move on.

Stream ``DLQ`` (subjects ``dlq.>``, file storage, 2 min dedupe): a dead letter is published to
``dlq.<consumer>.<stream sequence>`` with the original payload, the original headers (but the
server-directed ``Nats-*`` ones; the event id goes to ``Eda-Original-Msg-Id``) and ``Eda-*`` headers
saying where it came from and why (``Eda-Error``, ``Eda-Deliveries``, ``Eda-Original-Subject``: the
names the console's Health page shows). ``Nats-Msg-Id`` is ``dlq-<consumer>-<seq>`` so a
projector that crashes between publishing and checkpointing does not park the same event twice (within
the dedupe window).

Why the attempts are counted here and not by JetStream's ``MaxDeliver``: the projector applies events in
stream order and acknowledges with ack policy "all" (one ack per batch). A server-side ``MaxDeliver``
stops redelivering the poison message but keeps delivering the ones after it, so the next batch's ack
would cover — and its checkpoint skip over — an event that was never applied nor parked: a silent gap.
The projector therefore counts attempts itself (``RetryPolicy``: ``max_deliver`` attempts, ``backoff``
delays between them), and only a transient failure (database or NATS connection) restarts the cycle
without counting. Visible as the counter ``eda.dead_letters`` (Prometheus ``eda_dead_letters_total``,
label ``consumer``), the projector's health detail and ``GET /api/v1/admin/dead-letters``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import (
    DiscardPolicy,
    RawStreamMsg,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from app.eventstore.required import require_stream
from app.telemetry import meter

log = logging.getLogger(__name__)

DLQ_STREAM = "DLQ"
DLQ_PREFIX = "dlq"
ERROR_MAX = 1000
MAX_AGE_S = 30 * 24 * 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """``max_deliver`` attempts per event; ``backoff[i]`` seconds before attempt ``i + 2`` (the last
    delay repeats)."""

    max_deliver: int = 5
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if not self.backoff:
            return 0.0
        return self.backoff[min(attempt, len(self.backoff)) - 1]

    @classmethod
    def parse(cls, max_deliver: int, backoff: str) -> RetryPolicy:
        """From settings: ``backoff`` is a comma-separated list of seconds (``"0.5,1,2,5"``)."""
        return cls(max_deliver, tuple(float(s) for s in backoff.split(",") if s.strip()))


def dlq_stream_config(replicas: int) -> StreamConfig:
    """The ``DLQ`` stream: kept 30 days, file storage, 2 min dedupe."""
    return StreamConfig(
        name=DLQ_STREAM,
        subjects=[f"{DLQ_PREFIX}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=MAX_AGE_S,
        num_replicas=replicas,
        duplicate_window=120.0,
    )


def transient(exc: BaseException, conn: asyncpg.Connection | None = None) -> bool:
    """A failure that says nothing about the event: lost database/NATS connection, timeouts."""
    if conn is not None and conn.is_closed():
        return True
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | NatsError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError,
    )


class DeadLetters:
    """Publishes dead letters of one consumer and counts them."""

    def __init__(self, js: JetStreamContext, consumer: str) -> None:
        self._js = js
        self._consumer = consumer
        self._counter = meter().create_counter(
            "eda.dead_letters", unit="{message}", description="Messages parked in the dead-letter stream"
        )
        self.count = 0

    async def require_stream(self) -> None:
        """Check that the ``DLQ`` stream exists (``NotProvisioned`` otherwise)."""
        await require_stream(self._js, DLQ_STREAM)

    async def park(self, msg: Msg, error: BaseException, attempts: int) -> int:
        """Publish ``msg`` to ``dlq.<consumer>.<seq>``; returns the dead letter's DLQ sequence."""
        meta = msg.metadata
        seq = meta.sequence.stream
        original = msg.headers or {}
        # Nats-* headers are instructions to the server (dedupe id, atomic batch, expectations): drop them
        headers = {k: v for k, v in original.items() if not k.startswith("Nats-")}
        original_id = original.get("Nats-Msg-Id", "")
        headers.update(
            {
                "Nats-Msg-Id": f"dlq-{self._consumer}-{seq}",
                "Eda-Original-Msg-Id": original_id,
                "Eda-Consumer": self._consumer,
                "Eda-Original-Stream": meta.stream,
                "Eda-Original-Sequence": str(seq),
                "Eda-Original-Subject": msg.subject,
                "Eda-Deliveries": str(attempts),
                "Eda-Error": f"{type(error).__name__}: {error}"[:ERROR_MAX].replace("\r\n", " "),
            }
        )
        ack = await self._js.publish(f"{DLQ_PREFIX}.{self._consumer}.{seq}", msg.data, headers=headers)
        self.count += 1
        self._counter.add(1, {"consumer": self._consumer})
        error_text = headers["Eda-Error"]
        log.error("dead-lettered %s seq %d after %d attempts: %s", msg.subject, seq, attempts, error_text)
        return int(ack.seq)


async def apply_isolated(
    msgs: Sequence[Msg],
    apply_one: Callable[[Msg], Awaitable[None]],
    park: Callable[[Msg, BaseException, int], Awaitable[None]],
    policy: RetryPolicy,
    *,
    is_transient: Callable[[BaseException], bool] = transient,
) -> int:
    """Apply ``msgs`` one at a time (each its own transaction); an event that keeps failing is retried
    ``policy.max_deliver`` times with backoff, then handed to ``park``. A transient failure propagates
    (the caller reconnects; nothing is counted). Returns how many were parked."""
    parked = 0
    for msg in msgs:
        attempt = 1
        while True:
            try:
                await apply_one(msg)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    raise
                if attempt >= policy.max_deliver:
                    await park(msg, exc, attempt)
                    parked += 1
                    break
                log.warning("event %s failed (attempt %d): %s", msg.subject, attempt, exc)
                await asyncio.sleep(policy.delay(attempt))
                attempt += 1
    return parked


async def recent(js: JetStreamContext, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` dead letters (newest first), headers and a payload preview; ``[]`` if the
    stream does not exist."""
    try:
        info = await js.stream_info(DLQ_STREAM)
    except NotFoundError:
        return []
    out: list[dict[str, Any]] = []
    async for seq, raw in newest_first(js, info, limit):
        headers = raw.headers or {}
        out.append(
            {
                "dlq_sequence": seq,
                "subject": raw.subject,
                "time": raw.time.isoformat() if isinstance(raw.time, datetime) else raw.time,
                "consumer": headers.get("Eda-Consumer"),
                "stream": headers.get("Eda-Original-Stream"),
                "sequence": int(headers.get("Eda-Original-Sequence", "0") or 0),
                "original_subject": headers.get("Eda-Original-Subject"),
                "attempts": int(headers.get("Eda-Deliveries", "0") or 0),
                "error": headers.get("Eda-Error"),
                "event_id": headers.get("Eda-Original-Msg-Id"),
                "preview": (raw.data or b"")[:200].decode("utf-8", "replace"),
            }
        )
    return out


async def newest_first(
    js: JetStreamContext, info: StreamInfo, limit: int
) -> AsyncIterator[tuple[int, RawStreamMsg]]:
    """The newest ``limit`` messages of the stream ``info`` describes, newest first, with their
    sequences; a message deleted since ``info`` was taken is passed over (dead letters are deleted
    once handled, so the stream has gaps)."""
    name, found = info.config.name or "", 0
    seq, first = int(info.state.last_seq), max(1, int(info.state.first_seq))
    while seq >= first and found < limit:
        try:
            raw = await js.get_msg(name, seq=seq)
        except NotFoundError:
            raw = None
        if raw is not None:
            found += 1
            yield seq, raw
        seq -= 1
