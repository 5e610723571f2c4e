"""The projector runner: JetStream events → the order projection in PostgreSQL, exactly once in effect.

Delivery: a durable pull consumer ``projector-orders`` on stream ``EVENTS`` filtered to
``events.order.>``. Pull requests stay outstanding (re-issued before they run dry or expire), messages
are handled as they arrive and whatever has queued up (≤ ``EDA_PROJECTOR_BATCH``) is applied as one
batch: rows + checkpoint in ONE transaction (``apply.apply_batch``), then the batch is acknowledged
(ack policy "all": one ack covers the batch). Events at or below the checkpoint are skipped, so a crash
between commit and ack, or any redelivery, never applies an event twice. Once a batch went through,
the leader keeps the rows it wrote and its checkpoint in memory and writes the next batches with
``apply_batch_fast``: one guarded autocommit statement (the stored checkpoint is still the one it wrote,
on the same table) instead of five round trips; if the guard fails, nothing is written, the memory is
dropped and the batch goes the transactional way.

One active projector per projection, with failover: every replica opens a dedicated PostgreSQL
connection and tries ``pg_try_advisory_lock(advisory_key("eda.projection.<name>"))`` every second.
The holder is the leader; it applies its batches ON THAT SAME CONNECTION, so a leader that lost its
session (network, crash) also lost the lock and cannot commit anything: leadership is fenced by
PostgreSQL itself. The new leader reads the checkpoint and recreates the durable consumer to start at
checkpoint + 1 — the checkpoint in PostgreSQL is the source of truth, the consumer only a cursor.
If the stored checkpoint ever moves behind what this leader committed (a rebuild swapped in a shadow
schema), the leader recreates its consumer from the new checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from app.eventstore import jsapi
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import RecordedEvent
from app.eventstore.jetstream import STREAM
from app.readmodel import db
from app.readmodel.apply import CheckpointRewound, apply_batch, apply_batch_fast
from app.readmodel.deadletter import DeadLetters, RetryPolicy, apply_isolated, transient
from app.readmodel.fold import PROJECTION, SUBJECTS, OrderView
from app.readmodel.lag import ProjectionLag
from app.readmodel.sql import checkpoint_table, read_checkpoint, set_checkpoint
from app.telemetry import batch_consumer_span

log = logging.getLogger(__name__)

DURABLE = "projector-orders"
PULL_EXPIRES_S = 5.0
HEARTBEAT_S = 1.0
# Silence (no message, not even a heartbeat) for this long means the pull request was lost: a consumer
# created on a cluster answers only once its own leader is elected, and a consumer leader change drops
# the waiting requests. The first silent window asks again; the second restarts the consumer.
SILENT_S = HEARTBEAT_S * 3
SILENT_WINDOWS = 2
VIEW_CACHE = 20_000  # rows kept in memory: orders are busy for seconds, a miss costs one read


def lock_key(projection: str = PROJECTION) -> int:
    """The advisory-lock key that elects the active projector of ``projection`` (rebuilds may use it)."""
    return db.advisory_key(f"eda.projection.{projection}")


async def consumer_lag(nc: NATS, durable: str = DURABLE) -> int | None:
    """Order events not yet applied+acknowledged by the projector (``None``: no consumer yet)."""
    try:
        info = await nc.jetstream(timeout=2.0).consumer_info(STREAM, durable)
    except NotFoundError:
        return None
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


@dataclass
class ProjectorStatus:
    """What the projector's health endpoint reports."""

    leader: bool = False
    checkpoint: int = 0
    applied: int = 0
    batches: int = 0
    fast_batches: int = 0  # written by the one-statement path (apply_batch_fast)
    last_error: str | None = None
    dead_letters: int = 0
    delivery_gaps: int = 0
    repulls: int = 0  # pull requests asked again: lost (a silent window) or ended by a leader change
    consumer_restarts: int = 0  # consumers restarted from the checkpoint (ConsumerLost)
    started: float = field(default_factory=time.monotonic)


class ConsumerLost(RuntimeError):
    """The consumer stopped answering — neither a message nor a heartbeat for ``SILENT_WINDOWS`` windows
    though the pull was asked again — or the server ended it (a 409 other than a leader change: deleted,
    limits): it is restarted from the checkpoint; the leader keeps its lock and its connection."""


class DeliveryGap(RuntimeError):
    """The consumer's delivery sequence did not continue by one: a delivery was lost (or repeated),
    typically across a consumer leader change. With ack policy "all", applying and acknowledging what
    follows would acknowledge — and skip forever — what was lost, so the consumer is restarted from the
    checkpoint instead."""


def in_order(delivered: int, deliveries: Sequence[int]) -> int:
    """How many of ``deliveries`` (consumer delivery sequences, as received) continue ``delivered`` one
    by one; fewer than all means a delivery was lost or repeated before the next one (a gap)."""
    n = 0
    for expected, dseq in enumerate(deliveries, start=delivered + 1):
        if dseq != expected:
            break
        n += 1
    return n


class Projector:
    """Runs the order projection forever (``await run()``; cancel to stop)."""

    def __init__(
        self,
        nc: NATS,
        codec: EventCodec,
        dsn: str,
        schema: str,
        *,
        batch: int = 500,
        durable: str = DURABLE,
        retry_s: float = 1.0,
        poison: RetryPolicy | None = None,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=5.0)
        self._codec = codec
        self._dsn = dsn
        self._schema = schema
        self._batch = batch
        self._durable = durable
        self._retry_s = retry_s
        self._poison = poison or RetryPolicy()
        self._dead = DeadLetters(self._js, durable)
        self.status = ProjectorStatus()
        # the rows this leader wrote last (most recent last) and its checkpoint table's OID, while valid
        self._views: dict[int, OrderView] = {}
        self._table: int | None = None

    async def run(self) -> None:
        """Compete for leadership; while leader, project. Errors are logged and the cycle restarts."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.status.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("projector cycle failed, retrying: %s", self.status.last_error, exc_info=True)
            self.status.leader = False
            await asyncio.sleep(self._retry_s)

    async def _lead(self) -> None:
        conn = await db.connect(self._dsn)
        sampler: asyncio.Task[None] | None = None
        try:
            await self._acquire(conn)
            self.status.leader = True
            log.info("projector %s: leader", self._durable)
            await self._dead.require_stream()
            lag = ProjectionLag(self._nc, self._codec, PROJECTION, self._durable, SUBJECTS)
            sampler = asyncio.create_task(lag.run(lambda: self.status.checkpoint))
            while True:
                checkpoint = await read_checkpoint(conn, self._schema)
                try:
                    await self._consume(conn, checkpoint)
                except CheckpointRewound as exc:
                    log.warning("projector: checkpoint rewound to %d, restarting consumer", exc.stored)
                except DeliveryGap as exc:
                    self.status.delivery_gaps += 1
                    log.warning("projector: %s; restarting the consumer from the checkpoint", exc)
                except ConsumerLost as exc:
                    self.status.consumer_restarts += 1
                    log.warning("projector: %s; restarting the consumer from the checkpoint", exc)
        finally:
            if sampler is not None:
                sampler.cancel()
            self.status.leader = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2.0)

    async def _acquire(self, conn: asyncpg.Connection) -> None:
        """Wait until this session holds the projection's advisory lock (standbys retry every second)."""
        while True:
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key()):
                return
            await asyncio.sleep(self._retry_s)

    async def _reset_consumer(self, checkpoint: int) -> None:
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(STREAM, self._durable)
        start = (
            {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": checkpoint + 1}
            if checkpoint > 0
            else {"deliver_policy": DeliverPolicy.ALL}
        )
        await self._js.add_consumer(
            STREAM,
            ConsumerConfig(
                durable_name=self._durable,
                filter_subject=SUBJECTS,
                ack_policy=AckPolicy.ALL,
                ack_wait=30.0,
                max_ack_pending=50_000,
                max_waiting=512,
                **start,
            ),
        )

    async def _consume(self, conn: asyncpg.Connection, checkpoint: int) -> None:
        self._forget()
        await self._reset_consumer(checkpoint)
        self.status.checkpoint = checkpoint
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        inbox = self._nc.new_inbox()  # a new inbox per consumer incarnation: stale deliveries are dropped

        async def on_msg(msg: Msg) -> None:
            queue.put_nowait(msg)

        sub = await self._nc.subscribe(inbox, cb=on_msg)
        pull_subject = jsapi.consumer_next_subject(STREAM, self._durable)
        pull = jsapi.pull_request(self._batch * 2, PULL_EXPIRES_S, idle_heartbeat_s=HEARTBEAT_S)
        last_pull, since_pull = 0.0, 0

        async def ask() -> None:
            nonlocal last_pull, since_pull
            await self._nc.publish(pull_subject, pull, reply=inbox)
            last_pull, since_pull = time.monotonic(), 0

        try:
            await ask()
            delivered = 0  # the consumer's delivery sequence of the last message received
            while True:
                first = await self._next(queue, ask)
                msgs = [first]
                while not queue.empty() and len(msgs) < self._batch:
                    msgs.append(queue.get_nowait())
                data = [m for m in msgs if not m.headers or "Status" not in m.headers]
                for m in msgs:
                    if m.headers and m.headers.get("Status") == "409":
                        await self._interrupted(m.headers.get("Description", ""), ask)
                deliveries = [m.metadata.sequence.consumer for m in data]
                n = in_order(delivered, deliveries)
                if n < len(data):
                    if n:  # apply what arrived in order before the gap, then restart
                        await self._apply(conn, data[:n])
                    raise DeliveryGap(f"delivery sequence {deliveries[n]} after {delivered + n}")
                delivered += n
                since_pull += len(data)
                now = time.monotonic()
                if since_pull >= self._batch or now - last_pull > PULL_EXPIRES_S / 2:
                    await ask()
                if data:
                    await self._apply(conn, data)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _next(self, queue: asyncio.Queue[Msg], ask_again: Callable[[], Awaitable[None]]) -> Msg:
        """The next message (data, heartbeat or status); after a silent window the pull is asked again,
        after ``SILENT_WINDOWS`` of them ``ConsumerLost``."""
        for window in range(1, SILENT_WINDOWS + 1):
            try:
                return await asyncio.wait_for(queue.get(), SILENT_S)
            except TimeoutError:
                if window < SILENT_WINDOWS:
                    log.info("projector: no heartbeat for %g s, asking the consumer again", SILENT_S)
                    self.status.repulls += 1
                    await ask_again()
        raise ConsumerLost(f"no heartbeat from the consumer for {SILENT_WINDOWS * SILENT_S:g} s")

    async def _interrupted(self, description: str, ask_again: Callable[[], Awaitable[None]]) -> None:
        """A 409 ended a pull request. A consumer leader change ends every waiting request and the new
        leader has none: ask again (deliveries it lost show up as a ``DeliveryGap``). Anything else
        (consumer deleted, a limit exceeded) restarts the consumer."""
        if "leadership change" in description.lower():
            log.info("projector: consumer leader changed, asking the new leader")
            self.status.repulls += 1
            await ask_again()
            return
        raise ConsumerLost(f"consumer interrupted: 409 {description}")

    async def _apply(self, conn: asyncpg.Connection, msgs: list[Msg]) -> None:
        """Apply ``msgs`` as one batch; if that fails for a reason other than a lost connection, apply
        them one at a time so only a poison event is retried and, in the end, dead-lettered."""
        try:
            await self._apply_batch(conn, msgs)
        except CheckpointRewound:
            raise
        except Exception as exc:
            if transient(exc, conn):
                raise
            log.warning("projector: batch failed (%s), isolating the poison event", exc)
            await apply_isolated(msgs, lambda m: self._apply_batch(conn, [m]), self._park(conn), self._poison)
        self.status.batches += 1
        await msgs[-1].ack()

    def _park(self, conn: asyncpg.Connection) -> Callable[[Msg, BaseException, int], Awaitable[None]]:
        async def park(msg: Msg, error: BaseException, attempts: int) -> None:
            seq = msg.metadata.sequence.stream
            await self._dead.park(msg, error, attempts)
            async with conn.transaction():  # checkpoint past it: the poison event is never retried
                stored = await read_checkpoint(conn, self._schema, lock=True)
                if stored < self.status.checkpoint:
                    raise CheckpointRewound(stored)
                if seq > stored:
                    await set_checkpoint(conn, self._schema, seq)
            self.status.checkpoint = max(self.status.checkpoint, seq)
            self.status.dead_letters += 1

        return park

    def _forget(self) -> None:
        """Drop the in-memory rows and checkpoint table: the next batch goes through ``apply_batch``."""
        self._views.clear()
        self._table = None

    async def _write(self, conn: asyncpg.Connection, events: list[RecordedEvent]) -> int:
        """One batch: the fast path while this leader's cache is valid, else ``apply_batch`` (which reads
        the checkpoint and the rows under the checkpoint lock) and, after it, the fast path again."""
        if self._table is not None:
            try:
                applied = await apply_batch_fast(
                    conn,
                    self._schema,
                    events,
                    checkpoint=self.status.checkpoint,
                    table=self._table,
                    views=self._views,
                )
            except BaseException:
                self._forget()
                raise
            if applied is not None:
                self.status.fast_batches += 1
                while len(self._views) > VIEW_CACHE:
                    del self._views[next(iter(self._views))]
                return applied
            self._forget()  # the checkpoint moved under us (a rebuild swap...): read what is stored
        written: dict[int, OrderView] = {}
        applied = await apply_batch(
            conn, self._schema, events, expect_checkpoint=self.status.checkpoint, views_out=written
        )
        self._views.update(written)
        with contextlib.suppress(Exception):  # committed already; without it the next batch is slow
            self._table = await checkpoint_table(conn, self._schema)
        return applied

    async def _apply_batch(self, conn: asyncpg.Connection, msgs: list[Msg]) -> None:
        events: list[RecordedEvent] = []
        for m in msgs:
            seq = m.metadata.sequence.stream
            try:
                events.append(self._codec.decode(m.data, seq))
            except Exception:
                if seq > self.status.checkpoint:  # at or below: applied (or parked) already
                    raise
        if events:
            # one span per batch, linked to every event's producer (a batch serves many traces)
            with batch_consumer_span(
                SUBJECTS, [e.envelope.traceparent for e in events], attributes={"eda.projection": PROJECTION}
            ):
                applied = await self._write(conn, events)
            self.status.applied += applied
            self.status.checkpoint = max(self.status.checkpoint, *(e.sequence for e in events))
