"""The chaos workload: concurrent writers appending with OCC through the real ``JetStreamEventStore``,
a ledger of what was acknowledged, and the audit of the stream against that ledger.

Each writer owns its aggregates (``events.chaos.w<i>-<k>``), so a ``ConcurrencyError`` can only be its
own earlier attempt being recognised late (it reloads and looks for its event id) — anything else is
a bug. A failed append (``EventStoreError``, a NATS timeout or connection error) is retried with the
same events (same ids) at the same expected position until it is acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar, Literal

import nats.errors
from nats.aio.client import Client as NATS

from app.domain.order.events import OrderCompleted, OrderCreated, OrderItem, OrderPaid, OrderShipped
from app.domain.registry import all_event_types
from app.eventstore.codec import EventCodec
from app.eventstore.envelope import NEW, Metadata, NewEvent, Position, StreamId
from app.eventstore.jetstream import JetStreamEventStore
from app.eventstore.ports import ConcurrencyError, EventStoreError

META = Metadata(correlation_id="chaos")
AGGREGATE_TYPE = "chaos"
RETRYABLE = (EventStoreError, nats.errors.Error, TimeoutError, ConnectionError)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosTick:
    """A test event: writer ``writer`` appended its ``n``-th command (part ``part`` of a batch)."""

    TYPE: ClassVar[str] = "ChaosTick"
    VERSION: ClassVar[int] = 1
    writer: int
    n: int
    part: int = 0


def chaos_codec() -> EventCodec:
    return EventCodec([ChaosTick])


type Kind = Literal["chaos", "order"]
ORDER_LIFECYCLE = 4  # OrderCreated, OrderPaid, OrderShipped, OrderCompleted
T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def codec_for(kind: Kind) -> EventCodec:
    return chaos_codec() if kind == "chaos" else EventCodec(all_event_types())


def order_events(order_id: int, version: int, parts: int) -> list[object]:
    """The next ``parts`` events of an order's happy path after ``version`` (0 = not created yet)."""
    amount = Decimal(order_id % 1000) / 4 + 1
    lifecycle: list[object] = [
        OrderCreated(
            order_id=order_id,
            user_id=order_id % 17 + 1,
            items=(OrderItem(product_id=order_id % 5 + 1, quantity=order_id % 3 + 1),),
            amount=amount,
            currency="USD",
            at=T0,
            owner=str(order_id % 17 + 1),
        ),
        OrderPaid(order_id=order_id, payment_id=f"p-{order_id}", amount=amount, at=T0),
        OrderShipped(order_id=order_id, tracking_number=f"t-{order_id}", at=T0),
        OrderCompleted(order_id=order_id, at=T0),
    ]
    return lifecycle[version : version + parts]


@dataclass
class Acked:
    subject: str
    version: int
    sequence: int


@dataclass
class Ledger:
    """Everything the writers attempted and what the store acknowledged (event id → position)."""

    attempted: set[str] = field(default_factory=set)
    acked: dict[str, Acked] = field(default_factory=dict)
    appends_acked: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    late_recognised: int = 0
    foreign_conflicts: int = 0
    ack_times: list[float] = field(default_factory=list)
    max_stall_s: float = 0.0

    def outage_after(self, t: float, window: float = 60.0) -> float:
        """Write unavailability after a fault at ``t``: the longest time without any acknowledgement
        within ``window`` seconds after it (an ack already in flight at ``t`` does not hide the gap)."""
        times = sorted(a for a in self.ack_times if t < a <= t + window)
        if not times:
            return float("nan")
        gaps = [times[0] - t] + [b - a for a, b in itertools.pairwise(times)]
        return round(max(gaps), 3)


class Writer:
    """One writer: ``appends`` commands round-robin over its own ``aggregates``; every ``batch_every``-th
    command appends two events in one atomic batch.

    ``kind="chaos"`` appends ``ChaosTick`` events to ``events.chaos.w<i>-<k>``. ``kind="order"`` appends
    real Order events (the projector projects them): each of the writer's ``aggregates`` slots walks one
    order through created → paid → shipped → completed (a batch is two consecutive steps), then moves on
    to a new order id (``(i + 1) * 1_000_000 + k * 10_000 + generation``)."""

    def __init__(
        self,
        index: int,
        store: JetStreamEventStore,
        ledger: Ledger,
        *,
        aggregates: int,
        appends: int,
        batch_every: int = 10,
        kind: Kind = "chaos",
    ) -> None:
        self.index = index
        self.store = store
        self.ledger = ledger
        self.kind = kind
        self.generation = [0] * aggregates
        self.streams = [self._stream(k) for k in range(aggregates)]
        self.positions: dict[StreamId, Position] = dict.fromkeys(self.streams, NEW)
        self.appends = appends
        self.batch_every = batch_every
        self.done = 0

    def _stream(self, slot: int) -> StreamId:
        if self.kind == "chaos":
            return StreamId(AGGREGATE_TYPE, f"w{self.index}-{slot}")
        order_id = (self.index + 1) * 1_000_000 + slot * 10_000 + self.generation[slot]
        return StreamId("order", str(order_id))

    def _next(self, n: int, parts: int) -> tuple[StreamId, list[NewEvent]]:
        slot = n % len(self.streams)
        stream = self.streams[slot]
        if self.kind == "chaos":
            return stream, [NewEvent(event=ChaosTick(writer=self.index, n=n, part=p)) for p in range(parts)]
        version = self.positions[stream].version
        if version >= ORDER_LIFECYCLE:  # this order is completed: the slot starts a new one
            self.generation[slot] += 1
            stream = self.streams[slot] = self._stream(slot)
            self.positions[stream] = NEW
            version = 0
        events = order_events(int(stream.aggregate_id), version, min(parts, ORDER_LIFECYCLE - version))
        return stream, [NewEvent(event=e) for e in events]

    async def run(self, deadline: float, stop: asyncio.Event | None = None) -> None:
        for n in range(self.appends):
            if stop is not None and stop.is_set():
                return
            parts = 2 if self.batch_every and n % self.batch_every == self.batch_every - 1 else 1
            stream, events = self._next(n, parts)
            await self._append_until_acked(stream, events, deadline)
            self.done += 1

    async def _append_until_acked(self, stream: StreamId, events: list[NewEvent], deadline: float) -> None:
        expected = self.positions[stream]
        self.ledger.attempted.update(e.event_id for e in events)
        started = time.monotonic()
        while True:
            try:
                result = await self.store.append(stream, events, expected, META)
                first = result.first_sequence
                break
            except ConcurrencyError:
                first = await self._recognise(stream, events, expected)
                break
            except RETRYABLE as exc:
                self.ledger.errors[type(exc).__name__] += 1
                self.ledger.retries += 1
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        now = time.monotonic()
        self.ledger.max_stall_s = max(self.ledger.max_stall_s, now - started)
        self.ledger.ack_times.append(now)
        self.ledger.appends_acked += 1
        for i, e in enumerate(events):
            self.ledger.acked[e.event_id] = Acked(stream.subject, expected.version + i + 1, first + i)
        self.positions[stream] = Position(expected.version + len(events), first + len(events) - 1)

    async def _recognise(self, stream: StreamId, events: list[NewEvent], expected: Position) -> int:
        """After a conflict: are our events the ones right after ``expected``? (our own lost ack)."""
        loaded = await self.store.load(stream, expected)
        ids = [r.envelope.event_id for r in loaded.events[: len(events)]]
        if ids != [e.event_id for e in events]:
            self.ledger.foreign_conflicts += 1
            raise AssertionError(f"{stream}: conflict that is not our own append: {ids}")
        self.ledger.late_recognised += 1
        return loaded.events[0].sequence


async def run_writers(
    connections: list[NATS],
    ledger: Ledger,
    *,
    appends: int,
    aggregates_per_writer: int = 25,
    deadline_s: float = 600.0,
    stop: asyncio.Event | None = None,
    kind: Kind = "chaos",
) -> list[Writer]:
    """``len(connections)`` writers (one store and connection each), ``appends`` commands in total
    (fewer if ``stop`` is set: each writer finishes its in-flight command, then returns)."""
    stores = [await JetStreamEventStore.open(nc, codec_for(kind)) for nc in connections]
    per = appends // len(stores)
    writers = [
        Writer(i, s, ledger, aggregates=aggregates_per_writer, appends=per, kind=kind)
        for i, s in enumerate(stores)
    ]
    deadline = time.monotonic() + deadline_s
    try:
        await asyncio.gather(*(w.run(deadline, stop) for w in writers))
    finally:
        for s in stores:
            await s.close()
    return writers


@dataclass
class Audit:
    """The stream compared with the ledger."""

    stored: int
    lost: int
    duplicated: int
    misplaced: int
    order_violations: int
    unacked_stored: int


async def audit(store: JetStreamEventStore, ledger: Ledger, aggregate_type: str = AGGREGATE_TYPE) -> Audit:
    """Read the whole stream (global order) and check every acknowledged event is there exactly once,
    at the sequence its ack named, and that each aggregate's versions are 1..n in stream order."""
    last = await store.last_sequence()
    events = await store.read_all(1, limit=last + 1, subjects=f"events.{aggregate_type}.>")
    counts = Counter(e.envelope.event_id for e in events)
    seq_of = {e.envelope.event_id: e.sequence for e in events}
    next_version: dict[str, int] = {}
    order_violations = 0
    for e in events:
        subject = e.stream_id.subject
        want = next_version.get(subject, 1)
        if e.version != want:
            order_violations += 1
        next_version[subject] = e.version + 1
    return Audit(
        stored=len(events),
        lost=sum(1 for eid in ledger.acked if eid not in counts),
        duplicated=sum(n - 1 for n in counts.values() if n > 1),
        misplaced=sum(1 for eid, a in ledger.acked.items() if eid in seq_of and seq_of[eid] != a.sequence),
        order_violations=order_violations,
        unacked_stored=sum(1 for eid in counts if eid not in ledger.acked),
    )


def audit_figures(ledger: Ledger, result: Audit) -> dict[str, object]:
    """What every chaos run reports about its appends: acknowledged vs stored, and what went wrong."""
    return {
        "appends_acknowledged": ledger.appends_acked,
        "events_acknowledged": len(ledger.acked),
        "events_stored": result.stored,
        "lost": result.lost,
        "duplicated": result.duplicated,
        "misplaced": result.misplaced,
        "order_violations": result.order_violations,
        "stored_but_unacknowledged": result.unacked_stored,
        "retries": ledger.retries,
        "errors": dict(ledger.errors),
        "late_recognised_own_appends": ledger.late_recognised,
        "max_append_stall_s": round(ledger.max_stall_s, 3),
    }


def assert_nothing_lost(ledger: Ledger, result: Audit) -> None:
    """Every acknowledged event stored once, in its place and order; nothing stored unacknowledged;
    no conflict but real ones."""
    assert result.lost == 0
    assert result.duplicated == 0
    assert result.misplaced == 0
    assert result.order_violations == 0
    assert result.unacked_stored == 0
    assert ledger.foreign_conflicts == 0
    assert ledger.late_recognised == 0, "the store reported a conflict for its own stored append"
