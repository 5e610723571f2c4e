"""The event store's in-memory twin: the ``EventStore`` promises inside one process, for unit tests.

It stores what the JetStream adapter stores — the same codec, envelopes and headers, one global
sequence, per-subject expected sequences, atomic multi-stream appends — so a service tested on it
meets the same conflicts, duplicates and upcasting; ``tests/contract`` holds both to one suite. It
remembers event ids for ever where JetStream does for its duplicate window (the port promises only
the window), and keeps nothing across processes: never a production store.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence

from app.eventstore.codec import EventCodec, message_headers
from app.eventstore.envelope import Metadata, Position, RawMessage, StreamId
from app.eventstore.jsapi import subject_matches
from app.eventstore.ports import (
    MAX_BATCH,
    AppendRequest,
    AppendResult,
    ConcurrencyError,
    EventStoreBase,
    EventStoreError,
    LoadedStream,
)


class InMemoryEventStore(EventStoreBase):
    """``EventStore`` in a list: message ``n`` has sequence ``n``."""

    def __init__(self, codec: EventCodec) -> None:
        self._codec = codec
        self._messages: list[RawMessage] = []
        self._by_subject: dict[str, list[int]] = {}
        self._ids: set[str] = set()

    @property
    def codec(self) -> EventCodec:
        return self._codec

    async def close(self) -> None:
        return None

    async def append_multi(self, requests: Sequence[AppendRequest], meta: Metadata) -> list[AppendResult]:
        requests = [r for r in requests if r.events]
        if not requests:
            return []
        ids = [new.event_id for r in requests for new in r.events]
        if len(ids) > MAX_BATCH:
            raise EventStoreError(f"at most {MAX_BATCH} events per append")
        await asyncio.sleep(0)  # the answer comes later, as from a server: other tasks run meanwhile
        current = all(self._last(r.stream.subject) == r.expected.sequence for r in requests)
        if current and len(set(ids)) == len(ids) and self._ids.isdisjoint(ids):
            return [self._store(r, meta) for r in requests]
        return [self._already_stored(r) for r in requests]

    def _last(self, subject: str) -> int:
        sequences = self._by_subject.get(subject)
        return sequences[-1] if sequences else 0

    def _store(self, req: AppendRequest, meta: Metadata) -> AppendResult:
        subject = req.stream.subject
        first = len(self._messages) + 1
        for i, new in enumerate(req.events):
            envelope = self._codec.envelope(req.stream, req.expected.version + i + 1, new, meta)
            sequence = len(self._messages) + 1
            data = self._codec.encode(envelope)
            self._messages.append(RawMessage(sequence, subject, data, message_headers(new, meta)))
            self._by_subject.setdefault(subject, []).append(sequence)
            self._ids.add(new.event_id)
        n = len(req.events)
        return AppendResult(position=Position(req.expected.version + n, first + n - 1), first_sequence=first)

    def _already_stored(self, req: AppendRequest) -> AppendResult:
        """The events right after ``expected`` are these very ones (a retry): success, nothing stored."""
        sequences = self._by_subject.get(req.stream.subject, [])
        start = bisect.bisect_right(sequences, req.expected.sequence)
        following = sequences[start : start + len(req.events)]
        stored = [self._messages[s - 1].headers["Nats-Msg-Id"] for s in following]
        if stored != [new.event_id for new in req.events]:
            raise ConcurrencyError(req.stream, req.expected, "stream moved")
        n = len(req.events)
        return AppendResult(
            position=Position(req.expected.version + n, following[-1]),
            first_sequence=following[0],
            duplicate=True,
        )

    async def load(self, stream: StreamId, after: Position | None = None) -> LoadedStream:
        start = after or Position(0, 0)
        await asyncio.sleep(0)
        sequences = self._by_subject.get(stream.subject, [])
        tail = sequences[bisect.bisect_right(sequences, start.sequence) :]
        return LoadedStream.after(start, self._codec.decode_all(self._messages[s - 1] for s in tail))

    async def read_raw(
        self, from_sequence: int, *, limit: int = 1000, subjects: str = "events.>"
    ) -> list[RawMessage]:
        await asyncio.sleep(0)
        out: list[RawMessage] = []
        for message in self._messages[max(from_sequence, 1) - 1 :]:
            if len(out) >= limit:
                break
            if subject_matches(subjects, message.subject):
                out.append(message)
        return out

    async def last_sequence(self) -> int:
        return len(self._messages)
