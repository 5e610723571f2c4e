"""The event store's port — the one door every caller uses — with its result types and errors.

Two implementations keep the same promises (tests/contract runs one suite against both): the JetStream
adapter (``app.eventstore.jetstream``, built only by the composition roots) and the in-memory twin
(``app.eventstore.memory``, for fast unit tests).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.eventstore.codec import EventCodec
from app.eventstore.envelope import Metadata, NewEvent, Position, RawMessage, RecordedEvent, StreamId


class EventStoreError(Exception):
    """The event store could not do what was asked (unreachable, rejected, ...)."""


class ConcurrencyError(EventStoreError):
    """The stream moved since it was loaded: someone else appended first (optimistic concurrency)."""

    def __init__(self, stream: StreamId, expected: Position, detail: str = "") -> None:
        super().__init__(f"{stream}: expected version {expected.version} (seq {expected.sequence}) {detail}")
        self.stream = stream
        self.expected = expected


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where the stream stands after an append; ``first_sequence`` is the first new event's sequence."""

    position: Position
    first_sequence: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One stream's part of a (possibly multi-stream) atomic append."""

    stream: StreamId
    events: Sequence[NewEvent]
    expected: Position


@dataclass(frozen=True, slots=True)
class LoadedStream:
    """Events of one stream after some position, and the position after them."""

    events: list[RecordedEvent]
    position: Position

    @classmethod
    def after(cls, start: Position, events: list[RecordedEvent]) -> LoadedStream:
        """``events`` read after ``start``; the position is the last one's, or ``start`` when none."""
        if not events:
            return cls(events=[], position=start)
        return cls(events=events, position=Position(events[-1].version, events[-1].sequence))


MAX_BATCH = 1000
"""The most events one append (all its streams together) may carry."""


class EventStore(Protocol):
    """Append-only streams, one per aggregate, in one global order. The promises:

    - ``append`` stores ``events`` iff the stream's last sequence is still ``expected.sequence``
      (else ``ConcurrencyError``); all of them or none; versions continue from ``expected.version``.
    - Idempotent: an append whose events (same ids, in order) already follow ``expected`` reports
      success with ``duplicate=True`` and stores nothing, however long ago they were stored; an event
      id stored elsewhere is never stored again (``ConcurrencyError``) — JetStream promises that within
      its duplicate window (2 min), the twin for ever.
    - ``append_multi``: several streams, each with its own expected position, all or nothing.
    - Global order: every stored event has a sequence, increasing across streams; ``read_all`` and
      ``read_raw`` return them in that order from any sequence, filtered by a subject pattern
      (``*`` one token, ``>`` the rest).
    - At most ``MAX_BATCH`` events per append (``EventStoreError`` otherwise).
    """

    @property
    def codec(self) -> EventCodec: ...

    async def append(
        self, stream: StreamId, events: Sequence[NewEvent], expected: Position, meta: Metadata
    ) -> AppendResult: ...

    async def append_multi(self, requests: Sequence[AppendRequest], meta: Metadata) -> list[AppendResult]: ...

    async def load(self, stream: StreamId, after: Position | None = None) -> LoadedStream: ...

    async def read_all(
        self, from_sequence: int, *, limit: int = 1000, subjects: str = "events.>"
    ) -> list[RecordedEvent]: ...

    async def read_raw(
        self, from_sequence: int, *, limit: int = 1000, subjects: str = "events.>"
    ) -> list[RawMessage]: ...

    async def last_sequence(self) -> int: ...

    async def close(self) -> None: ...


class EventStoreBase(ABC):
    """What every implementation derives the same way from its own ``append_multi`` and ``read_raw``."""

    @property
    @abstractmethod
    def codec(self) -> EventCodec: ...

    @abstractmethod
    async def append_multi(self, requests: Sequence[AppendRequest], meta: Metadata) -> list[AppendResult]: ...

    @abstractmethod
    async def read_raw(
        self, from_sequence: int, *, limit: int = 1000, subjects: str = "events.>"
    ) -> list[RawMessage]: ...

    async def append(
        self, stream: StreamId, events: Sequence[NewEvent], expected: Position, meta: Metadata
    ) -> AppendResult:
        """Append ``events`` iff the stream is still at ``expected``; all or nothing; idempotent."""
        [result] = await self.append_multi([AppendRequest(stream, events, expected)], meta)
        return result

    async def read_all(
        self, from_sequence: int, *, limit: int = 1000, subjects: str = "events.>"
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events of all aggregates from ``from_sequence`` on, in global stream order."""
        return self.codec.decode_all(await self.read_raw(from_sequence, limit=limit, subjects=subjects))
