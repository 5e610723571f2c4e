"""Ports of the event store (owned by the service layer that uses them) and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from app.eventstore.envelope import Metadata, NewEvent, Position, RecordedEvent, StreamId


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


class EventStore(Protocol):
    """Append-only, per-aggregate optimistic concurrency, idempotent appends, global order for readers."""

    async def append(
        self, stream: StreamId, events: Sequence[NewEvent], expected: Position, meta: Metadata
    ) -> AppendResult: ...

    async def append_multi(self, requests: Sequence[AppendRequest], meta: Metadata) -> list[AppendResult]: ...

    async def load(self, stream: StreamId, after: Position | None = None) -> LoadedStream: ...

    async def read_all(
        self, from_sequence: int, *, limit: int = 1000, subjects: str = "events.>"
    ) -> list[RecordedEvent]: ...

    async def last_sequence(self) -> int: ...
